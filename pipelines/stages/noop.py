from pipelines.stages.base import StageContext, stage


@stage(name="noop", description="Does nothing. For measuring the engine's own overhead (bench/bench_engine.py).")
def run(context: StageContext, params: dict) -> dict:
    return {}
