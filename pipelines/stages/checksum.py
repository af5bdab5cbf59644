import hashlib

from pipelines.stages.base import StageContext, stage

CHUNK = 1024 * 1024


@stage(
    name="checksum",
    description="SHA-256 of the document's bytes.",
    params={"algorithm": {"type": "string", "enum": ["sha256"], "default": "sha256"}},
)
def run(context: StageContext, params: dict) -> dict:
    digest = hashlib.sha256()
    with context.open() as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return {"algorithm": "sha256", "sha256": digest.hexdigest(), "size": context.size}
