"""Docker's Python SDK and testcontainers against Husk's Docker Engine API.

Run by agent/tests/docker_python.rs with DOCKER_HOST set to an agent's
Docker socket (busybox:latest imported) and Ryuk off (it is an image
from Docker Hub, which these machines cannot reach). Nothing here talks
to a dockerd: each assertion is about what Husk answered.
"""

import urllib.request

import docker
import pytest
from testcontainers.core.container import DockerContainer
from testcontainers.core.wait_strategies import HttpWaitStrategy, LogMessageWaitStrategy

# Every container this suite makes carries it, so the last test can tell
# that none was left behind.
LABEL = {"husk.test": "docker-sdk"}


@pytest.fixture(scope="module")
def client():
    client = docker.from_env()
    yield client
    client.close()


def test_the_sdk_negotiates_with_husk(client):
    assert client.api.api_version == "1.41"
    assert client.version()["ApiVersion"] == "1.41"
    info = client.info()
    assert info["OperatingSystem"] == "Husk", info
    tags = [tag for image in client.images.list() for tag in image.tags]
    assert "busybox:latest" in tags, tags


def test_run_returns_the_output(client):
    out = client.containers.run(
        "busybox", ["echo", "hello from husk"], remove=True, labels=LABEL
    )
    assert out == b"hello from husk\n"


def test_a_detached_container_exits_with_its_code_and_keeps_its_logs(client):
    container = client.containers.run(
        "busybox",
        ["sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 7"],
        detach=True,
        labels=LABEL,
    )
    try:
        assert container.wait(timeout=60)["StatusCode"] == 7
        assert container.logs(stdout=True, stderr=False) == b"to-stdout\n"
        assert container.logs(stdout=False, stderr=True) == b"to-stderr\n"
        container.reload()
        assert container.status == "exited"
        assert container.attrs["State"]["ExitCode"] == 7
    finally:
        container.remove()
    with pytest.raises(docker.errors.NotFound):
        client.containers.get(container.id)


def test_environment_labels_and_filters(client):
    container = client.containers.run(
        "busybox",
        ["sh", "-c", "echo $GREETING; sleep 300"],
        environment={"GREETING": "hi there"},
        labels={**LABEL, "role": "sleeper"},
        detach=True,
    )
    try:
        found = client.containers.list(filters={"label": "role=sleeper"})
        assert [c.id for c in found] == [container.id]
        assert client.containers.list(filters={"label": "role=nobody"}) == []
        assert container.labels["role"] == "sleeper"
        container.reload()
        assert container.status == "running"
        assert "GREETING=hi there" in container.attrs["Config"]["Env"]
    finally:
        container.remove(force=True)


def test_what_husk_refuses_is_an_api_error(client):
    with pytest.raises(docker.errors.APIError) as refused:
        client.containers.run("busybox", "true", privileged=True, remove=True, labels=LABEL)
    assert "privileged" in str(refused.value).lower(), refused.value
    with pytest.raises(docker.errors.APIError) as refused:
        client.containers.run("busybox", "true", cap_add=["SYS_ADMIN"], labels=LABEL)
    assert "CapAdd" in str(refused.value), refused.value
    # (create, not run: run would go and pull it)
    with pytest.raises(docker.errors.ImageNotFound):
        client.containers.create("husk-test/no-such-image:1", "true", labels=LABEL)
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get("husk-test/no-such-image:1")


def test_testcontainers_waits_for_a_log_line_and_a_port():
    script = (
        "mkdir -p /srv && echo 'served by husk' > /srv/index.html && "
        "echo ready to serve && exec httpd -f -p 8080 -h /srv"
    )
    container = (
        DockerContainer("busybox")
        .with_command(["sh", "-c", script])
        .with_kwargs(labels=LABEL)
        .with_exposed_ports(8080)
    )
    with container:
        LogMessageWaitStrategy("ready to serve").with_startup_timeout(60).wait_until_ready(container)
        HttpWaitStrategy(8080, "/index.html").with_startup_timeout(60).wait_until_ready(container)
        host = container.get_container_host_ip()
        port = container.get_exposed_port(8080)
        with urllib.request.urlopen(f"http://{host}:{port}/index.html", timeout=10) as page:
            assert page.read() == b"served by husk\n"
        container_id = container.get_wrapped_container().id
    # Leaving the block removes it (force, with its volumes).
    with pytest.raises(docker.errors.NotFound):
        docker.from_env().containers.get(container_id)


def test_nothing_is_left_behind(client):
    left = client.containers.list(all=True, filters={"label": "husk.test=docker-sdk"})
    assert left == [], [c.name for c in left]
