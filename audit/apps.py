from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"

    def ready(self):
        from audit import admin_log
        from audit.listener import listener
        from pipeline_project.lib import events

        admin_log.install()  # staff actions in the admin, mirrored into the trail
        events.listen(listener)  # system actions announced by jobs
