"""The RQ worker class to run: RQ's forking Worker, with the engine imported in the parent.

RQ forks a work horse per job, and whatever the parent has not imported every horse imports
again (and dies with it). The engine, the stage registry and config validation are imported
once here. Heavy libraries (the language model, PDF and DOCX parsers) are not: a bigger
parent makes every fork slower, which costs more than loading them in the jobs that use them.
"""

import rq


class Worker(rq.Worker):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        import jobs.tasks  # noqa: F401
