"""A single-node Apache Kafka (KRaft: broker and controller in one process) on 127.0.0.1.

The broker's jars come from Maven Central through Maven (kafka-pom.xml pins the version).
"""

from __future__ import annotations

import base64
import shutil
import socket
import subprocess
import uuid
from pathlib import Path

from devstack import processes
from devstack.config import StackConfig

POM = Path(__file__).with_name("kafka-pom.xml")

LOG4J2 = """\
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log_file}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
"""


def server_properties(
    config: StackConfig, data_dir: Path, extra: dict[str, str] | None = None
) -> str:
    host = config.host
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{host}:{config.kafka_controller_port}",
        "listeners": f"PLAINTEXT://{host}:{config.kafka_port},CONTROLLER://{host}:{config.kafka_controller_port}",
        "advertised.listeners": f"PLAINTEXT://{host}:{config.kafka_port}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": "3",
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "10",
        "group.initial.rebalance.delay.ms": "0",
        # Lets tests detect a killed consumer in ~2 s instead of the default 6 s minimum.
        "group.min.session.timeout.ms": "1000",
        "log.flush.interval.messages": "9223372036854775807",
    }
    props.update(extra or {})
    return "".join(f"{key}={value}\n" for key, value in props.items())


def sasl_ssl_properties(
    config: StackConfig,
    data_dir: Path,
    keystore: Path,
    truststore: Path,
    admin: tuple[str, str],
    authorizer: bool = False,
) -> str:
    """A broker whose clients speak SASL_SSL with SCRAM-SHA-256 (users added at format time,
    see `launch`), keys in PEM files. `admin` (name, password) is the broker's own identity
    towards itself and its controller. With `authorizer`, Kafka's StandardAuthorizer: the
    admin is the only super user, and without an ACL nothing is allowed.

    The controller listener takes SASL PLAIN (a SCRAM credential lives in the metadata the
    controller serves, so it cannot authenticate the controller's own peers) with the admin
    as its only user, so no anonymous connection to it passes the authorizer either.
    """
    host, port, controller = config.host, config.kafka_port, config.kafka_controller_port
    name, password = admin
    scram = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{name}" password="{password}";'
    )
    plain = (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'username="{name}" password="{password}" user_{name}="{password}";'
    )
    extra = {
        "listeners": f"SASL_SSL://{host}:{port},CONTROLLER://{host}:{controller}",
        "advertised.listeners": f"SASL_SSL://{host}:{port}",
        "listener.security.protocol.map": "SASL_SSL:SASL_SSL,CONTROLLER:SASL_PLAINTEXT",
        "inter.broker.listener.name": "SASL_SSL",
        "sasl.enabled.mechanisms": "SCRAM-SHA-256",
        "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-256",
        "listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config": scram,
        "sasl.mechanism.controller.protocol": "PLAIN",
        "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.controller.plain.sasl.jaas.config": plain,
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(keystore),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(truststore),
        "ssl.endpoint.identification.algorithm": "",
    }
    if authorizer:
        extra |= {
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": f"User:{name}",
            "allow.everyone.if.no.acl.found": "false",
        }
    return server_properties(config, data_dir, extra)


def scram_user(name: str, password: str) -> str:
    """A StorageTool `--add-scram` value for `launch`'s `scram_users`."""
    return f"SCRAM-SHA-256=[name={name},password={password}]"


def cluster_id() -> str:
    """A random id as Kafka's own `Uuid.randomUuid` makes it: never starting with "-".

    One in 64 random ids does, and StorageTool then reads it as an option and fails.
    """
    while True:
        encoded = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not encoded.startswith("-"):
            return encoded


def libs_dir(config: StackConfig) -> Path:
    return config.kafka_dir / "libs"


def install(config: StackConfig) -> None:
    """Resolve the broker jars with Maven, once (re-run when kafka-pom.xml changes)."""
    libs = libs_dir(config)
    stamp = libs / ".pom"
    if stamp.exists() and stamp.read_text() == POM.read_text():
        return
    if shutil.which("mvn") is None or shutil.which("java") is None:
        raise processes.StackError("Kafka needs Java 17+ and Maven on PATH (apt-get install maven)")
    if libs.exists():
        shutil.rmtree(libs)
    subprocess.run(
        [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={libs}",
            "-DincludeScope=runtime",
        ],
        check=True,
    )
    stamp.write_text(POM.read_text())


def _java(libs: Path, work_dir: Path, main_class: str, *args: str) -> list[str]:
    return [
        "java",
        "-Xms256m",
        "-Xmx1g",
        "-XX:+UseG1GC",
        f"-Dlog4j2.configurationFile={work_dir / 'log4j2.properties'}",
        "-cp",
        f"{libs}/*",
        main_class,
        *args,
    ]


def is_listening(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def launch(
    config: StackConfig,
    work_dir: Path,
    properties: str,
    pid_file: Path,
    scram_users: tuple[str, ...] = (),
) -> None:
    """Format storage (first time only, adding SCRAM users) and spawn a broker in `work_dir`.

    `scram_users` are StorageTool `--add-scram` values, e.g. "SCRAM-SHA-256=[name=a,password=b]".
    """
    install(config)
    work_dir.mkdir(parents=True, exist_ok=True)
    server = work_dir / "server.properties"
    server.write_text(properties)
    (work_dir / "log4j2.properties").write_text(
        LOG4J2.format(log_file=work_dir / "kafka-server.log")
    )
    data_dir = work_dir / "data"
    if not (data_dir / "meta.properties").exists():
        scram = [arg for user in scram_users for arg in ("--add-scram", user)]
        subprocess.run(
            _java(
                libs_dir(config),
                work_dir,
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster_id(),
                "-c",
                str(server),
                "--ignore-formatted",
                *scram,
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
    processes.spawn(
        _java(libs_dir(config), work_dir, "kafka.Kafka", str(server)),
        pid_file,
        work_dir / "kafka.out",
    )


def start(config: StackConfig) -> None:
    """Start the stack's broker unless it already runs; format storage on first start."""
    pid_file = config.run_dir / "kafka.pid"
    if processes.read_pid(pid_file):
        return
    if is_listening(config.host, config.kafka_port):
        raise processes.StackError(f"port {config.kafka_port} is taken by another process")
    launch(config, config.kafka_dir, server_properties(config, config.kafka_dir / "data"), pid_file)
    processes.wait_until(
        lambda: is_listening(config.host, config.kafka_port), 90, "Kafka to listen"
    )


def stop(config: StackConfig) -> bool:
    return processes.stop(config.run_dir / "kafka.pid", timeout_s=60)
