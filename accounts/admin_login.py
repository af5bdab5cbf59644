"""The admin's login, rate limited like the API's (``THROTTLE_RATE_LOGIN`` per client IP and per username).

Both pieces are wired in one place each: ``ThrottledAdminLoginForm`` as ``admin.site.login_form``
(accounts/admin.py) counts the attempt and refuses it before the password is checked; ``login``
is routed at ``admin/login/`` (pipeline_project/urls.py) and turns such a refusal into a 429 with
``Retry-After``, showing the login page with the error.
"""

import math

from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError

from pipeline_project.lib.throttling import login_attempt

_RETRY_AFTER = "login_retry_after"  # request attribute: set when the attempt was refused


class ThrottledAdminLoginForm(AdminAuthenticationForm):
    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "throttled": "Too many login attempts. Try again in %(seconds)d seconds.",
    }

    def clean(self):
        wait = login_attempt(self.request, username=self.data.get("username"))
        if wait is not None:  # refused before AuthenticationForm.clean() checks the password
            seconds = max(1, math.ceil(wait))
            setattr(self.request, _RETRY_AFTER, seconds)
            raise ValidationError(self.error_messages["throttled"], code="throttled", params={"seconds": seconds})
        return super().clean()


def login(request, extra_context=None):
    """``admin.site.login``, answering 429 (the page, with its error) to a throttled attempt."""
    response = admin.site.login(request, extra_context)
    seconds = getattr(request, _RETRY_AFTER, None)
    if seconds is not None:
        response.status_code = 429
        response["Retry-After"] = str(seconds)
    return response
