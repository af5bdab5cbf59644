"""Authentication overhead on gunicorn (2 sync workers, PostgreSQL, Redis).

Requests/s of GET /api/v1/auth/me authenticated by API key and by JWT, each divided
by GET /health (which touches nothing), measured interleaved in one run.
Target: both ratios >= 0.5.

    make bench-auth            # or: .venv/bin/python bench/bench_auth.py
"""

import sys

from common import bench_api_key, gunicorn, interleaved, setup_django, wrk_rps

TARGET = 0.5


def main() -> int:
    setup_django()
    from rest_framework_simplejwt.tokens import RefreshToken

    key, user, _ = bench_api_key()
    access = str(RefreshToken.for_user(user).access_token)  # valid 15 minutes: plenty for the run

    with gunicorn(workers=2) as base:
        wrk_rps(f"{base}/health", seconds=2)  # warm up both workers and connections
        wrk_rps(f"{base}/api/v1/auth/me", {"X-API-Key": key}, seconds=2)
        rps = interleaved(
            {
                "health": lambda: wrk_rps(f"{base}/health"),
                "me_api_key": lambda: wrk_rps(f"{base}/api/v1/auth/me", {"X-API-Key": key}),
                "me_jwt": lambda: wrk_rps(f"{base}/api/v1/auth/me", {"Authorization": f"Bearer {access}"}),
            }
        )

    print(f"{'endpoint':<28}{'req/s':>10}{'ratio':>9}")
    print(f"{'GET /health':<28}{rps['health']:>10.0f}{1:>9.2f}")
    ok = True
    for name, label in (("me_api_key", "GET /auth/me (API key)"), ("me_jwt", "GET /auth/me (JWT)")):
        ratio = rps[name] / rps["health"]
        ok &= ratio >= TARGET
        print(f"{label:<28}{rps[name]:>10.0f}{ratio:>9.2f}")
    print(f"target: each ratio >= {TARGET} -> {'MET' if ok else 'NOT MET'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
