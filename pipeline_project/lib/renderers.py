import json

from rest_framework.renderers import BaseRenderer


class PlainTextRenderer(BaseRenderer):
    """For endpoints that answer text/plain; errors (dicts) are written as JSON text."""

    media_type = "text/plain"
    format = "txt"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, str | bytes):
            return data
        return json.dumps(data)
