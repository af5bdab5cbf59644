import importlib

from django.apps import AppConfig
from django.conf import settings


class PipelinesConfig(AppConfig):
    name = "pipelines"

    def ready(self):
        for module in settings.PIPELINE_STAGE_MODULES:  # extra stages: each module registers its own on import
            importlib.import_module(module)
