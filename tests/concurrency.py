"""Running the same call in several threads at once, as concurrent workers or requests would."""

import threading

from django.db import connections


def in_threads(call, count: int = 2) -> list:
    """Runs ``call()`` in ``count`` threads started together; returns their results (in the order
    they finished) and raises the first exception one of them raised. Each thread's database
    connections are closed when it ends."""
    results, errors = [], []

    def run():
        try:
            results.append(call())
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results
