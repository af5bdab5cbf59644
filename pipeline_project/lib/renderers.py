from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation


class LenientContentNegotiation(DefaultContentNegotiation):
    """An ``Accept`` header we cannot satisfy gets the view's first renderer (JSON), not 406:
    RFC 9110 lets a server disregard Accept, and an error should always reach the client in
    the one error shape. (Plain-text endpoints answer with Django responses, not renderers.)"""

    def select_renderer(self, request, renderers, format_suffix=None):
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except NotAcceptable:
            return renderers[0], renderers[0].media_type


class FormatParameterNegotiation(LenientContentNegotiation):
    """``?format=json`` or ``?format=yaml`` picks the renderer: for the schema view, which tools fetch
    by URL (the API itself has one representation per endpoint and no ``format`` parameter)."""

    def select_renderer(self, request, renderers, format_suffix=None):
        wanted = request.query_params.get("format")
        for renderer in renderers:
            if wanted and renderer.format == wanted:
                return renderer, renderer.media_type
        return super().select_renderer(request, renderers, format_suffix)
