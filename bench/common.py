"""Shared helpers for benchmarks: a throwaway PostgreSQL database, gunicorn, wrk.

Benchmarks are run by hand (`make bench-*`), print absolute figures and, above all,
ratios measured side by side in one run: this machine is shared and noisy.

Environment: BENCH_DATABASE_URL, BENCH_REDIS_URL (defaults: database pipeline_bench, Redis
database 14), BENCH_THROTTLE (the per-caller rate; counted but never reached by default),
BENCH_GUNICORN_ARGS (extra gunicorn options, e.g. "--worker-class gthread --threads 4").
"""

import contextlib
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BENCH_DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres:postgres@127.0.0.1:5432/pipeline_bench")
BENCH_REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")

ENV = {
    **os.environ,
    "DJANGO_SETTINGS_MODULE": "pipeline_project.settings",
    "DATABASE_URL": BENCH_DATABASE_URL,
    "REDIS_URL": BENCH_REDIS_URL,
    "DEBUG": "0",
    "SECRET_KEY": "bench-secret-key-bench-secret-key-bench-secret",
    "THROTTLE_RATE_USER": os.environ.get("BENCH_THROTTLE", "100000000/min"),  # enforced (counted), never reached
    "THROTTLE_RATE_ANON": "none",
    "LOG_LEVEL": "WARNING",
}


def setup_django():
    """Configures this process for the bench database (created afresh and migrated)."""
    os.environ.update(ENV)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    name = settings.DATABASES["default"]["NAME"]
    with connection._nodb_cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{name}"')
    from django.core.management import call_command

    call_command("migrate", "--noinput", verbosity=0)
    from pipeline_project.lib.redis import get_redis

    get_redis().flushdb()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def gunicorn(workers: int = 2, extra: tuple[str, ...] = (), app: str = "pipeline_project.wsgi:application"):
    """Serves ``app`` (a WSGI callable, ``module:name``) with the settings the Dockerfile uses."""
    port = free_port()
    process = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "gunicorn",
            app,
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--log-level",
            "warning",
            "--limit-request-line",
            "8190",  # as the Dockerfile runs it
            *extra,
            *os.environ.get("BENCH_GUNICORN_ARGS", "").split(),
        ],
        cwd=ROOT,
        env=ENV,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{base}/health", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("gunicorn did not start") from None
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def ensure_wrk() -> str:
    if shutil.which("wrk") is None:
        print("installing wrk (Debian package) ...", file=sys.stderr)
        subprocess.run(["bash", "-c", "source scripts/lib.sh && apt_install wrk"], cwd=ROOT, check=True)
    return shutil.which("wrk")


def wrk_rps(
    url: str, headers: dict[str, str] | None = None, *, seconds: int = 5, connections: int = 8, script=None
) -> float:
    """Requests/s that answered 2xx (wrk counts non-2xx separately; any makes the run invalid).
    ``script``: a wrk Lua script (e.g. setting the method and body)."""
    command = [ensure_wrk(), "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if script:
        command += ["-s", str(script)]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"non-2xx answers from {url}:\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def interleaved(cases: dict[str, callable], rounds: int = 5) -> dict[str, float]:
    """Runs each case once per round, in turn, and returns each case's median."""
    results = {name: [] for name in cases}
    for _ in range(rounds):
        for name, case in cases.items():
            results[name].append(case())
    return {name: statistics.median(values) for name, values in results.items()}


def bench_api_key(name: str = "bench"):
    """A new organization with an admin and an API key: ``(key, user, organization)``."""
    from accounts.models import User
    from accounts.principal import Principal
    from accounts.roles import ROLE_PERMISSIONS, Role
    from accounts.services import api_key_create, organization_create

    user = User.objects.create_user(name, password="bench-password-1")
    organization = organization_create(name=name, owner=user)
    admin = Principal(user=user, organization=organization, role=Role.ADMIN, permissions=ROLE_PERMISSIONS[Role.ADMIN])
    return api_key_create(principal=admin, name=name)[1], user, organization


# --- RQ workers (bench_engine.py, bench_engine_real.py, bench_worker_memory.py) ---------------

STOCK_WORKER = "rq.Worker"  # RQ's forking worker: a work horse forked for every job
OUR_WORKER = "jobs.worker.Worker"  # ours: the job in the warm worker, its stages in a reused parser child


def start_worker(queues: list[str], worker_class: str, *, burst: bool = True) -> subprocess.Popen:
    """``manage.py rqworker`` on ``queues``; its output goes to a temporary file (``.log``)."""
    import tempfile

    log = tempfile.TemporaryFile()
    command = [PYTHON, "manage.py", "rqworker", *queues, "--worker-class", worker_class, *(["--burst"] * burst)]
    process = subprocess.Popen(command, cwd=ROOT, env=ENV, stdout=log, stderr=subprocess.STDOUT)
    process.log = log
    return process


def finish_worker(process: subprocess.Popen, timeout: float = 1800) -> None:
    """Waits for a worker; raises with the end of its output unless it exited 0."""
    code = process.wait(timeout)
    process.log.seek(0)
    output = process.log.read().decode(errors="replace")
    process.log.close()
    if code != 0:
        raise RuntimeError(f"rqworker exited {code}:\n{output[-4000:]}")


def drain(queues: list[str], worker_class: str, *, workers: int = 2) -> float:
    """Wall seconds for ``workers`` burst workers of ``worker_class`` to empty ``queues``, start-up included."""
    started = time.monotonic()
    processes = [start_worker(queues, worker_class) for _ in range(workers)]
    for process in processes:
        finish_worker(process)
    return time.monotonic() - started


def rq_window(job_ids: list[str]) -> float:
    """Seconds from the first of ``job_ids`` started to the last ended, as the workers wrote it
    in RQ's job hashes (``started_at``, ``ended_at``): the drain without the workers' start-up."""
    import redis
    from rq.utils import utcparse

    client = redis.Redis.from_url(BENCH_REDIS_URL)
    with client.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.hmget(f"rq:job:{job_id}", "started_at", "ended_at")
        rows = pipe.execute()
    if missing := sum(1 for started, ended in rows if not (started and ended)):
        raise RuntimeError(f"{missing} of {len(rows)} RQ jobs have no started_at/ended_at")
    first = min(utcparse(started.decode()) for started, _ in rows)
    last = max(utcparse(ended.decode()) for _, ended in rows)
    return (last - first).total_seconds()


def rss_mib(pid: int) -> float:
    """Resident memory (VmRSS) of ``pid`` in MiB; 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def child_pids(pid: int) -> list[int]:
    """``pid``'s child processes (Linux: /proc/<pid>/task/*/children)."""
    pids = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            pids += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            pass
    return pids


def verdict(label: str, value: float, target: float, *, stretch: float | None = None, below: bool = False) -> bool:
    """Prints ``label``'s value against its target (``below``: must be under it); True if met."""
    met = value < target if below else value >= target
    extra = f" (stretch {stretch}: {'reached' if value >= stretch else 'not reached'})" if stretch is not None else ""
    print(f"{label} {value:.2f}; target {'<' if below else '>='} {target} -> {'MET' if met else 'NOT MET'}{extra}")
    return met


def temporary_media() -> Path:
    """A fresh MEDIA_ROOT for this bench and the processes it starts (call before ``setup_django``)."""
    import tempfile

    media = Path(tempfile.mkdtemp(prefix="bench-media-"))
    ENV["MEDIA_ROOT"] = os.environ["MEDIA_ROOT"] = str(media)
    return media


# --- Documents (bench_engine_real.py, bench_worker_memory.py) --------------------------------

PROSE = {
    "en": [
        "The committee reviewed the quarterly figures and agreed to postpone the vote until the spring.",
        "Most of the new orders came from small businesses in the northern districts.",
        "Our engineers replaced the old pumps, which had been leaking for several months.",
        "The library will stay open late on Thursdays while the reading room is being repaired.",
        "Several residents complained that the buses were often late in the morning.",
        "The report recommends training more nurses before the hospital opens its new wing.",
        "Prices for fresh vegetables rose sharply after the floods destroyed many farms.",
        "She thanked the volunteers who had cleaned the riverbank over the weekend.",
    ],
    "fr": [
        "Le conseil municipal a décidé de rénover la bibliothèque avant la fin de l'année.",
        "Les habitants du quartier se plaignent depuis longtemps du bruit des camions.",
        "Nous avons reçu votre demande et nous vous répondrons dans les meilleurs délais.",
        "La récolte de cette saison a été meilleure que prévu grâce à un été très doux.",
        "Le directeur a présenté les nouveaux horaires aux employés lors de la réunion.",
        "Les élèves ont visité le musée d'histoire naturelle avec leurs professeurs.",
        "Il faudra remplacer les fenêtres de l'école avant l'arrivée de l'hiver.",
        "Les prix de l'énergie ont fortement augmenté depuis le début du mois.",
    ],
    "de": [
        "Der Gemeinderat hat beschlossen, die alte Brücke im nächsten Frühjahr zu erneuern.",
        "Viele Kunden haben sich über die langen Wartezeiten am Telefon beschwert.",
        "Die Ergebnisse der Untersuchung werden voraussichtlich im Herbst veröffentlicht.",
        "Unsere Mitarbeiter haben die Maschinen gründlich gereinigt und geprüft.",
        "Wegen des starken Regens wurde das Konzert im Park kurzfristig abgesagt.",
        "Die Schüler lernen in diesem Jahr zum ersten Mal eine zweite Fremdsprache.",
        "Der Zug nach München hatte heute Morgen fast eine Stunde Verspätung.",
        "Im Bericht werden mehrere Maßnahmen zur Senkung der Kosten vorgeschlagen.",
    ],
    "es": [
        "El ayuntamiento ha aprobado un nuevo plan para mejorar el transporte público.",
        "Los vecinos del barrio organizaron una fiesta para celebrar el fin del verano.",
        "La empresa espera aumentar sus ventas en el extranjero durante el próximo año.",
        "Los médicos recomiendan caminar al menos media hora cada día.",
        "El museo abrirá una nueva sala dedicada a la pintura del siglo diecinueve.",
        "Muchos estudiantes buscan trabajo durante las vacaciones de verano.",
        "La lluvia de los últimos días ha llenado por fin los embalses de la región.",
        "El informe describe los problemas principales y propone varias soluciones.",
    ],
    "it": [
        "Il comune ha deciso di ristrutturare la scuola elementare entro settembre.",
        "Molti turisti visitano la città durante i mesi estivi per il festival del cinema.",
        "La nostra azienda ha aperto un nuovo ufficio vicino alla stazione centrale.",
        "I prezzi degli affitti sono aumentati molto negli ultimi due anni.",
        "Gli studenti hanno presentato i risultati della loro ricerca al professore.",
        "Il treno per Milano è partito con mezz'ora di ritardo a causa della neve.",
        "Il rapporto suggerisce di investire di più nelle energie rinnovabili.",
        "La biblioteca resterà chiusa per lavori fino alla fine del mese.",
    ],
    "pt": [
        "A câmara municipal aprovou a construção de um novo parque junto ao rio.",
        "Os moradores pedem há anos mais autocarros para o centro da cidade.",
        "A empresa registou um aumento das vendas no último trimestre do ano.",
        "Os alunos visitaram a fábrica e aprenderam como se produz o papel.",
        "O relatório propõe várias medidas para reduzir o consumo de água.",
        "A biblioteca vai abrir aos domingos a partir do próximo mês.",
        "Os agricultores esperam que a chuva chegue antes do fim do verão.",
        "O novo hospital deverá receber os primeiros doentes em janeiro.",
    ],
    "nl": [
        "De gemeenteraad heeft besloten om de oude haven volgend jaar te vernieuwen.",
        "Veel bewoners klagen al jaren over het verkeer in de smalle straten.",
        "Het bedrijf verwacht dat de verkoop in het buitenland verder zal groeien.",
        "De leerlingen hebben een tentoonstelling over de geschiedenis van de stad gemaakt.",
        "Door de storm van gisteren zijn veel bomen in het park omgewaaid.",
        "Het rapport beschrijft hoe de kosten van de zorg kunnen worden verlaagd.",
        "De trein naar Amsterdam reed vanochtend met een flinke vertraging.",
        "De bibliotheek is tijdelijk gesloten omdat het dak wordt gerepareerd.",
    ],
}
LANGUAGES = sorted(PROSE)


def prose(index: int, sentences: int = 5) -> tuple[str, str]:
    """``(language, text)``: a few sentences of real prose, distinct for every ``index`` (so the
    content-hash cache never answers), in one of ``LANGUAGES`` in turn."""
    import random

    language = LANGUAGES[index % len(LANGUAGES)]
    rng = random.Random(index)
    chosen = rng.sample(PROSE[language], k=min(sentences, len(PROSE[language])))
    return language, f"{index}. " + " ".join(chosen)


def check_completed(ids: list[str]) -> None:
    """Raises unless every job of ``ids`` completed (naming a few that did not, and why)."""
    from jobs.models import Job, JobStatus

    done = Job.objects.filter(id__in=ids, status=JobStatus.COMPLETED).count()
    if done != len(ids):
        others = Job.objects.filter(id__in=ids).exclude(status=JobStatus.COMPLETED).values("status", "error")
        raise RuntimeError(f"only {done} of {len(ids)} jobs completed; e.g. {list(others[:3])}")


def children_cpu() -> float:
    """CPU seconds (user + system) of this process's children that ended and were waited for,
    their own waited-for children included (a worker's parser children)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def drain_cpu(queues: list[str], worker_class: str, *, workers: int = 2) -> tuple[float, float]:
    """``drain``, and the CPU seconds its workers (and their children) used."""
    before = children_cpu()
    wall = drain(queues, worker_class, workers=workers)
    return wall, children_cpu() - before
