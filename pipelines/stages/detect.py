from pipelines.detection import HEAD_SIZE, detect
from pipelines.stages.base import StageContext, StageError, stage


@stage(name="detect", description="Content type from the bytes (not the name); text encoding for text files.")
def run(context: StageContext, params: dict) -> dict:
    detection = detect(context.read(HEAD_SIZE), context.file_name)
    if detection is None:
        raise StageError("unsupported_type", "The document is not a type this service processes.")
    return {"mime_type": detection.mime_type, "encoding": detection.encoding}
