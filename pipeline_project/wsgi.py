import os

from django.core.wsgi import get_wsgi_application

from pipeline_project.serving import refuse_unsafe_settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pipeline_project.settings")
refuse_unsafe_settings()
application = get_wsgi_application()
