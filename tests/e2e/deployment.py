"""A whole Cinder deployment on loopback: the rig of the workflow tests and of `scripts/deployment`.

RabbitMQ (Debian's rabbitmq-server, run as a plain process with its own epmd, ports,
config and Erlang cookie), a fresh database on a server of `scripts/servers` synced by
`cinder-manage db sync`, and the patched Cinder 29.0.0 of `scripts/cinder-patched-venv`:
cinder-api (`auth_strategy = noauth`), cinder-scheduler and one cinder-volume process
per service, each in a process group of its own and stopped by its pid. Every port is
chosen free at run time; everything lives in one state folder (`deployment.json` there
records ports and pids, so another process can stop what this one started).

The volume backends are storage_simulator.py's drivers sharing one JSON state file:

- `replicated`: the hook driver, array-a replicating to array-b (the admin guide's story);
- `control`: the same driver without the hook, control-a replicating to control-b;
- `gold`: the hook driver for the active-active cluster, gold-a replicating to gold-b;
- `slow`: the hook driver for a service stopped while its hook works, slow-a to slow-b.

Each cinder-volume process reads the shared cinder.conf plus a small file of its own
(host, enabled_backends, cluster, database connection, simulator options), so one
backend can be stopped, reconfigured and restarted while the others keep running.

Usable from Python (the test fixtures) and as a command (`scripts/deployment`).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
API_VERSION = "3.71"
VOLUME_HOST = "cinder-1"
# Processes write through different Galera nodes: without causal reads, Cinder's own
# read-then-save (freeze_host after the API's frozen=True) fails certification (1213).
GALERA_CAUSAL_READS = "mysql_wsrep_sync_wait = 1\n"
# What VolumeManager.init_host_with_rpc logs last (with or without the hook).
INITIALIZED = "Driver post RPC initialization completed successfully"


@dataclass
class Backend:
    driver: str                 # a class of storage_simulator
    array: str                  # simulator_array: the primary
    target: str | None          # replication_device backend_id

    def section(self, name: str, state_file: Path) -> str:
        lines = [f"[{name}]",
                 f"volume_driver = storage_simulator.{self.driver}",
                 f"volume_backend_name = {name}",
                 f"simulator_state_file = {state_file}",
                 f"simulator_array = {self.array}"]
        if self.target:
            lines.append(f"replication_device = backend_id:{self.target}")
        return "\n".join(lines) + "\n"


def default_backends() -> dict[str, Backend]:
    return {
        "replicated": Backend("StorageSimulatorHookDriver", "array-a", "array-b"),
        "control": Backend("StorageSimulatorDriver", "control-a", "control-b"),
        "gold": Backend("StorageSimulatorHookDriver", "gold-a", "gold-b"),
        "slow": Backend("StorageSimulatorHookDriver", "slow-a", "slow-b"),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_for(what: str, ready, timeout: float, proc_alive=None, log: Path | None = None) -> float:
    """Poll `ready()` until true; seconds waited. Fails early when the process died."""
    start = time.monotonic()
    while not ready():
        if proc_alive is not None and not proc_alive():
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"{what} exited while starting (log {log}):\n{tail}")
        if time.monotonic() - start > timeout:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise TimeoutError(f"{what} not ready after {timeout} s (log {log}):\n{tail}")
        time.sleep(0.2)
    return time.monotonic() - start


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"   # a zombie is dead
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def database_url(admin_url: str, name: str) -> str:
    """`admin_url` (a server's URL of scripts/servers) naming database `name` instead."""
    from sqlalchemy.engine import make_url
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


@dataclass
class Deployment:
    state_dir: Path
    venv: Path
    admin_url: str = ""                 # the database server (scripts/servers), for CREATE DATABASE
    backends: dict[str, Backend] = field(default_factory=default_backends)
    ports: dict[str, int] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    db_url: str = ""
    galera: bool = False                # a multi-writer Galera cluster: causal reads (see write_conf)
    node: str = ""
    _children: dict[str, subprocess.Popen] = field(default_factory=dict, repr=False)
    log_offsets: dict[str, int] = field(default_factory=dict, repr=False)   # where each start's log begins

    # -- persistence ----------------------------------------------------------------------------

    def __post_init__(self) -> None:
        self.state_dir = Path(self.state_dir).resolve()

    @property
    def record(self) -> Path:
        return self.state_dir / "deployment.json"

    @classmethod
    def load(cls, state_dir: Path) -> Deployment:
        data = json.loads((state_dir / "deployment.json").read_text())
        backends = {k: Backend(**v) for k, v in data.pop("backends").items()}
        return cls(state_dir=state_dir, backends=backends, venv=Path(data.pop("venv")), **data)

    def save(self) -> None:
        data = {"venv": str(self.venv), "admin_url": self.admin_url, "ports": self.ports, "pids": self.pids,
                "db_url": self.db_url, "galera": self.galera, "node": self.node,
                "backends": {k: vars(v) for k, v in self.backends.items()}}
        self.record.write_text(json.dumps(data, indent=1))

    # -- paths ----------------------------------------------------------------------------------

    @property
    def conf(self) -> Path:
        return self.state_dir / "cinder.conf"

    @property
    def arrays_file(self) -> Path:
        return self.state_dir / "arrays.json"

    def log(self, name: str) -> Path:
        return self.state_dir / "log" / f"{name}.log"

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)

    # -- processes ------------------------------------------------------------------------------

    def running(self, name: str) -> bool:
        pid = self.pids.get(name)
        if pid is None:
            return False
        child = self._children.get(name)
        if child is not None:
            return child.poll() is None
        return pid_alive(pid)

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> int:
        """Start `argv` in a process group of its own, output to its log; record its pid."""
        log = self.log(name)
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {})}, start_new_session=True,
                                     cwd=self.state_dir)
        self._children[name] = child
        self.pids[name] = child.pid
        self.save()
        return child.pid

    def signal(self, name: str, sig: int = signal.SIGTERM) -> None:
        """Send `sig` to the process (not its group: a parent passes it on as it would)."""
        os.kill(self.pids[name], sig)

    def wait_exit(self, name: str, timeout: float = 30) -> bool:
        deadline = time.monotonic() + timeout
        while self.running(name):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    def stop(self, name: str, timeout: float = 30) -> None:
        """TERM to the process group, KILL after `timeout` s; forget the pid."""
        pid = self.pids.get(name)
        if pid is None:
            return
        if self.running(name):
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            if not self.wait_exit(name, timeout):
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.wait_exit(name, 10)
        child = self._children.pop(name, None)
        if child is not None:
            child.wait(timeout=10)
        self.pids.pop(name, None)
        self.save()

    # -- RabbitMQ -------------------------------------------------------------------------------

    def start_rabbitmq(self) -> None:
        if self.running("rabbitmq") and port_open(self.ports["amqp"]):
            return
        base = self.state_dir / "rabbitmq"
        base.mkdir(parents=True, exist_ok=True)
        for key in ("epmd", "amqp", "dist"):
            self.ports.setdefault(key, free_port())
        self.node = self.node or f"rig{secrets.token_hex(3)}@localhost"
        (base / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.ports['amqp']}\n"
            "loopback_users.guest = true\n"
            "log.console = false\n")
        (base / "enabled_plugins").write_text("[].\n")
        (base / "rabbitmq-env.conf").write_text("")
        env = {
            "HOME": str(base),   # the Erlang cookie is created here
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_EPMD_PORT": str(self.ports["epmd"]),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_PID_FILE": str(base / "rabbit.pid"),
            "RABBITMQ_DIST_PORT": str(self.ports["dist"]),
        }
        if not self.running("epmd"):
            self.spawn("epmd", ["epmd", "-address", "127.0.0.1", "-port", str(self.ports["epmd"])], env)
            wait_for("epmd", lambda: port_open(self.ports["epmd"]), 10, lambda: self.running("epmd"),
                     self.log("epmd"))
        self.spawn("rabbitmq", ["/usr/lib/rabbitmq/bin/rabbitmq-server"], env)
        wait_for("rabbitmq-server", lambda: port_open(self.ports["amqp"]), 90, lambda: self.running("rabbitmq"),
                 self.log("rabbitmq"))

    # -- Cinder ---------------------------------------------------------------------------------

    def write_conf(self) -> None:
        """cinder.conf shared by every process (the operator's file)."""
        state = self.state_dir / "state"
        for d in (state, self.state_dir / "locks"):
            d.mkdir(parents=True, exist_ok=True)
        text = f"""[DEFAULT]
auth_strategy = noauth
transport_url = rabbit://guest:guest@127.0.0.1:{self.ports['amqp']}/
state_path = {state}
my_ip = 127.0.0.1
host = {VOLUME_HOST}
osapi_volume_listen = 127.0.0.1
osapi_volume_listen_port = {self.ports['api']}
osapi_volume_workers = 1
api_paste_config = {self.venv / 'etc' / 'cinder' / 'api-paste.ini'}
service_down_time = 10
report_interval = 2
periodic_interval = 5
# one project (noauth's admin) creates every volume of the tests
quota_volumes = -1
quota_gigabytes = -1
quota_snapshots = -1
enabled_backends = {','.join(self.backends)}
debug = true

[database]
connection = {self.db_url}
{GALERA_CAUSAL_READS if self.galera else ""}
[oslo_concurrency]
lock_path = {self.state_dir / 'locks'}

"""
        text += "\n".join(b.section(name, self.arrays_file) for name, b in self.backends.items())
        self.conf.write_text(text)

    def set_backend(self, name: str, **changes: Any) -> None:
        """Change a backend's cinder.conf section (what the operator edits)."""
        backend = self.backends[name]
        for key, value in changes.items():
            setattr(backend, key, value)
        self.save()
        self.write_conf()

    def create_database(self) -> float:
        import sqlalchemy as sa
        start = time.monotonic()
        name = f"cinder_rig_{secrets.token_hex(4)}"
        engine = sa.create_engine(self.admin_url)
        with engine.begin() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
        engine.dispose()
        self.db_url = database_url(self.admin_url, name)
        self.save()
        self.write_conf()
        self.run(self.bin("cinder-manage"), "--config-file", str(self.conf), "db", "sync", check=True)
        return time.monotonic() - start

    def drop_database(self) -> None:
        import sqlalchemy as sa
        from sqlalchemy.engine import make_url
        if not self.db_url:
            return
        engine = sa.create_engine(self.admin_url)
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {make_url(self.db_url).database}"))
        engine.dispose()

    def cinder_env(self) -> dict[str, str]:
        """What the operator exports to use the `cinder` client (and cinder-promote) here."""
        return {
            "OS_AUTH_TYPE": "noauth",
            "OS_USER_ID": "admin",
            "OS_PROJECT_ID": "admin",
            "CINDER_ENDPOINT": f"http://127.0.0.1:{self.ports['api']}/v3",
            "OS_VOLUME_API_VERSION": API_VERSION,
        }

    def ready(self) -> bool:
        """cinder-api answers and lists cinder-scheduler up. Asked at API version 3.0: from 3.49
        the list asks the scheduler over RPC, and a call made before the scheduler's queue
        exists is lost (the client would wait 60 s for nothing)."""
        if not port_open(self.ports["api"]):
            return False
        done = self.run(self.bin("cinder"), "--os-volume-api-version", "3.0", "service-list",
                        "--binary", "cinder-scheduler")
        return done.returncode == 0 and " up " in done.stdout

    def start_api(self) -> None:
        if not self.running("cinder-api"):
            self.spawn("cinder-api", [self.bin("cinder-api"), "--config-file", str(self.conf),
                                      "--log-file", str(self.log("cinder-api"))])
        wait_for("cinder-api and cinder-scheduler", self.ready, 60,
                 lambda: self.running("cinder-api") and self.running("cinder-scheduler"), self.log("cinder-api"))

    def start_scheduler(self) -> None:
        if not self.running("cinder-scheduler"):
            self.spawn("cinder-scheduler", [self.bin("cinder-scheduler"), "--config-file", str(self.conf),
                                            "--log-file", str(self.log("cinder-scheduler"))])

    def start_volume(self, name: str, backend: str, host: str = VOLUME_HOST, cluster: str | None = None,
                     db_url: str | None = None, options: dict[str, Any] | None = None) -> int:
        """A cinder-volume process `name` serving `backend` as `host@backend` (in `cluster`)."""
        own = self.state_dir / f"{name}.conf"
        text = f"[DEFAULT]\nhost = {host}\nenabled_backends = {backend}\n"
        if cluster:
            text += f"cluster = {cluster}\n"
        if db_url:
            text += f"\n[database]\nconnection = {db_url}\n"
        if options:
            text += f"\n[{backend}]\n" + "".join(f"{k} = {v}\n" for k, v in options.items())
        own.write_text(text)
        log = self.log(name)
        self.log_offsets[name] = log.stat().st_size if log.exists() else 0
        env = {"PYTHONPATH": str(HERE)}
        return self.spawn(name, [self.bin("cinder-volume"), "--config-file", str(self.conf),
                                 "--config-file", str(own), "--log-file", str(self.log(name))], env)

    def started_log(self, name: str) -> str:
        """The log of the process's latest start."""
        with open(self.log(name), errors="replace") as f:
            f.seek(self.log_offsets.get(name, 0))
            return f.read()

    def wait_volume_ready(self, name: str, timeout: float = 90) -> float:
        """Until the cinder-volume process logs the end of its initialization (after the hook)."""
        return wait_for(name, lambda: self.log(name).exists() and INITIALIZED in self.started_log(name), timeout,
                        lambda: self.running(name), self.log(name))

    def run(self, *argv: str, check: bool = False, timeout: float = 120) -> subprocess.CompletedProcess:
        """A command with the operator's environment (the client's variables)."""
        env = {**os.environ, **(self.cinder_env() if "api" in self.ports else {})}
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout, cwd=self.state_dir)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done

    # -- the whole --------------------------------------------------------------------------------

    def start(self, volumes: bool = True) -> dict[str, float]:
        """Start everything not running (idempotent); the seconds each phase took."""
        times: dict[str, float] = {}
        self.state_dir.mkdir(parents=True, exist_ok=True)
        t = time.monotonic()
        self.start_rabbitmq()
        times["rabbitmq"] = time.monotonic() - t
        self.ports.setdefault("api", free_port())
        self.save()
        if not self.db_url:
            times["database"] = self.create_database()
        self.write_conf()
        t = time.monotonic()
        self.start_scheduler()
        self.start_api()
        if volumes:
            for backend in ("replicated", "control"):
                if not self.running(f"volume-{backend}"):
                    self.start_volume(f"volume-{backend}", backend)
        times["cinder"] = time.monotonic() - t
        return times

    def stop_all(self, drop: bool = False) -> None:
        for name in sorted(self.pids, key=lambda n: n in ("rabbitmq", "epmd")):   # the broker last
            if name == "epmd":
                continue
            self.stop(name)
        self.stop("epmd")
        if drop:
            self.drop_database()


def main(argv: list[str]) -> int:
    """scripts/deployment: start|stop|env|status, on the state folder of CINDER_PROMOTE_DEPLOYMENT_DIR."""
    state_dir = Path(os.environ.get("CINDER_PROMOTE_DEPLOYMENT_DIR", REPO / ".cache" / "deployment"))
    command = argv[0] if argv else ""
    known = (state_dir / "deployment.json").exists()
    if command == "start":
        if known:
            rig = Deployment.load(state_dir)
        else:
            admin = os.environ.get("CINDER_PROMOTE_TEST_MYSQL_URL")
            venv = os.environ.get("CINDER_PROMOTE_CINDER_PATCHED_VENV", str(REPO / ".cache" / "cinder-patched-venv"))
            if not admin:
                print("deployment: CINDER_PROMOTE_TEST_MYSQL_URL is not set (eval \"$(scripts/servers env)\")",
                      file=sys.stderr)
                return 2
            rig = Deployment(state_dir=state_dir, venv=Path(venv), admin_url=admin)
        for phase, seconds in rig.start().items():
            print(f"deployment: {phase} ready in {seconds:.1f} s", file=sys.stderr)
        command = "env"
    if not known and command != "env" and not (state_dir / "deployment.json").exists():
        if command == "stop":
            print("deployment: not started", file=sys.stderr)
            return 0
        if command == "status":
            print("deployment: not started")
            return 1
    if command == "env":
        rig = Deployment.load(state_dir)
        # CINDER_CONF is for the operator's `--config-file "$CINDER_CONF"` (cinder-manage, cinder-promote).
        for key, value in {**rig.cinder_env(), "CINDER_CONF": str(rig.conf)}.items():
            print(f"export {key}={value}")
        print(f"export PATH={rig.venv / 'bin'}:$PATH")
        return 0
    if command == "stop":
        rig = Deployment.load(state_dir)
        rig.stop_all(drop="--drop" in argv)
        if "--drop" in argv:
            shutil.rmtree(state_dir)
        return 0
    if command == "status":
        rig = Deployment.load(state_dir)
        down = [name for name in rig.pids if not rig.running(name)]
        for name, pid in rig.pids.items():
            print(f"{name}: {'running' if rig.running(name) else 'stopped'} (pid {pid}, log {rig.log(name)})")
        return 1 if down or not rig.pids else 0
    print("usage: scripts/deployment start|stop [--drop]|env|status", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
