"""Config: pydantic models, TOML + `RACKD_…` env loading, and two-phase validation of driver options."""

from __future__ import annotations

import os
import re
import socket
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from rackd.console.config import ConsoleConfig, ConsoleSettings
from rackd.drivers.contract import DriverOptions
from rackd.drivers.registry import DriverRegistry
from rackd.errors import ConfigError, ConfigIssue, DriverNotFoundError, SecretError
from rackd.secrets import Secret

ENV_PREFIX = "RACKD_"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# Keys whose values are never echoed back in an error message (they may hold a secret typed in by mistake).
SECRETISH = re.compile(r"pass|secret|community|key|token|auth|priv|credential", re.IGNORECASE)


def _topic_safe(value: str) -> str:
    # Names become MQTT topic levels: '/', '+', '#' or spaces would break the topic tree.
    if not NAME_RE.match(value):
        raise ValueError("must be 1-64 characters of letters, digits, '_', '.', '-', starting alphanumeric")
    return value


Name = Annotated[str, AfterValidator(_topic_safe)]
Seconds = Annotated[float, Field(gt=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteConfig(_Strict):
    """Which site this daemon manages (the second level of every topic)."""

    name: Name


def _default_instance() -> str:
    host = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname()) or "rackd"
    return host[:64] if NAME_RE.match(host[:64]) else "rackd"


class DaemonConfig(_Strict):
    """Where the daemon keeps its state and sockets, and how it shuts down."""

    instance: Name = Field(default_factory=_default_instance)
    state_dir: Path = Path("/var/lib/rackd")
    console_log_dir: Path = Path("/var/log/rackd/console")
    control_socket: Path = Path("/run/rackd/control.sock")
    shutdown_grace: Seconds = 10.0


class MqttConfig(_Strict):
    """The broker: URL (mqtt:// or mqtts://), identity, TLS files and the topic prefix."""

    url: str = "mqtt://127.0.0.1:1883"
    client_id: str | None = None
    username: str | None = None
    password: Secret | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    topic_prefix: Name = "rackd"
    keepalive: Annotated[int, Field(ge=5, le=3600)] = 30
    spool_max_messages: Annotated[int, Field(ge=10)] = 100_000
    reconnect_max: Seconds = 10.0  # cap of the full-jitter reconnect backoff: telemetry resumes within this

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"mqtt", "mqtts"}:
            raise ValueError("must start with mqtt:// or mqtts://")
        if not parts.hostname:
            raise ValueError("must name a host, e.g. mqtt://127.0.0.1:1883")
        try:
            _ = parts.port
        except ValueError:
            raise ValueError("has an invalid port") from None
        if parts.username or parts.password:
            raise ValueError("must not carry credentials; use mqtt.username and mqtt.password")
        return value

    @property
    def host(self) -> str:
        """Broker host name."""
        host = urlsplit(self.url).hostname
        assert host is not None
        return host

    @property
    def tls(self) -> bool:
        """True for mqtts://."""
        return urlsplit(self.url).scheme == "mqtts"

    @property
    def port(self) -> int:
        """Broker port (1883, or 8883 for mqtts:// when not given)."""
        return urlsplit(self.url).port or (8883 if self.tls else 1883)


class SigningConfig(_Strict):
    """Signed MQTT commands: each operator's shared key; unsigned, tampered, stale or replayed commands are refused."""

    keys: dict[str, Secret]  # operator name (the request's requested_by) -> HMAC-SHA256 key
    admins: list[str] = []  # signers whose commands carry the admin role (the others: operator)
    max_skew: Seconds = 300.0


class ControlConfig(_Strict):
    """Roles on the control socket: user names, or `@group` for every member of a group.

    root and the daemon's own user are always admins; anyone else not listed is refused.
    """

    viewers: list[str] = []  # status, sensors, events, console watch
    operators: list[str] = []  # + power, outlets, console write
    admins: list[str] = []  # + protected targets, bulk actions over the threshold
    signing: SigningConfig | None = None  # if set, MQTT commands must be signed


class ActionsConfig(_Strict):
    """Safety settings of power and outlet actions."""

    min_interval: Annotated[float, Field(ge=0)] = 30.0  # s between two actions on one target
    cycle_off_time: Annotated[float, Field(ge=0)] = 5.0  # s a cycled target stays observed-off
    soft_off_timeout: Seconds = 120.0  # s an OS gets to shut down after soft_off before escalation
    verify_interval: Seconds = 1.0  # first wait between state checks while verifying; doubles up to 10 s
    bulk_threshold: Annotated[int, Field(ge=1)] = 5  # more targets than this need an explicit confirmation
    stagger: Annotated[float, Field(ge=0)] = 5.0  # s between power-ons of nodes in one rack
    mqtt_role: Literal["viewer", "operator", "admin"] = "operator"  # role of a command that arrives over MQTT


class RackConfig(_Strict):
    """A rack's power budget (for the power-on interlock and budget events)."""

    id: Name
    power_budget_w: Annotated[float, Field(gt=0)] | None = None


class DefaultsConfig(_Strict):
    """Defaults for every device; a device may override its poll interval and call timeout."""

    poll_interval: Seconds = 30.0
    call_timeout: Seconds = 10.0
    open_timeout: Seconds = 20.0
    backoff_initial: Seconds = 2.0
    backoff_max: Seconds = 300.0
    auth_backoff: Seconds = 900.0  # long and fixed: repeated bad logins lock BMC accounts
    power_timeout: Seconds = 180.0


class _DeviceBase(BaseModel):
    id: Name
    rack: Name
    protected: bool = False
    tags: list[str] = []
    poll_interval: Seconds | None = None
    call_timeout: Seconds | None = None
    power_timeout: Seconds | None = None  # how long a power change may take to be observed (slow BMCs: more)


class DriverTable(BaseModel):
    """`{ driver = "…", …options }`; the options are validated by the driver's own model (phase two)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    driver: str


_OUTLET_RE = re.compile(r"^(?P<pdu>[A-Za-z0-9][A-Za-z0-9_.-]*):(?P<outlet>[A-Za-z0-9_.-]+)$")


def _outlet_ref(value: str) -> str:
    if not _OUTLET_RE.match(value):
        raise ValueError("must be PDU:OUTLET, e.g. 'pdu-a1:7'")
    return value


OutletRef = Annotated[str, AfterValidator(_outlet_ref)]


class NodeConfig(_DeviceBase):
    """A server: its BMC, the PDU outlets feeding its PSUs, its console."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bmc: DriverTable | None = None
    outlets: list[OutletRef] = []
    console: ConsoleConfig | None = None
    max_power_w: Annotated[float, Field(gt=0)] | None = None
    escalate: bool = False  # opt-in: soft_off -> hard off via BMC -> PDU outlets when the BMC fails


class PduConfig(_DeviceBase):
    """A rack PDU; keys other than the common ones are the driver's options."""

    model_config = ConfigDict(extra="allow", frozen=True)

    driver: str
    feed: Name | None = None  # the power feed it is on ("A", "B"): rack totals are reported per feed


class ConsoleServerConfig(_DeviceBase):
    """A serial console server; keys other than the common ones are the driver's options."""

    model_config = ConfigDict(extra="allow", frozen=True)

    driver: str


class RackdSettings(BaseSettings):
    """The whole config file (phase one). Environment `RACKD_SECTION__KEY` overrides the file."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True, case_sensitive=False
    )

    site: SiteConfig
    daemon: DaemonConfig = DaemonConfig()
    mqtt: MqttConfig = MqttConfig()
    defaults: DefaultsConfig = DefaultsConfig()
    control: ControlConfig = ControlConfig()
    actions: ActionsConfig = ActionsConfig()
    rack: list[RackConfig] = []
    console: ConsoleSettings = ConsoleSettings()
    node: list[NodeConfig] = []
    pdu: list[PduConfig] = []
    console_server: list[ConsoleServerConfig] = []

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],  # noqa: ARG003 - required by the pydantic-settings hook
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003 - deliberately unused: no .env files
        file_secret_settings: PydanticBaseSettingsSource,  # noqa: ARG003 - secrets go through rackd.secrets
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment beats the file (the file arrives as init kwargs); no .env or secrets dir magic."""
        return (env_settings, init_settings)


class DeviceKind(StrEnum):
    """What a configured device is."""

    NODE = "node"
    PDU = "pdu"
    CONSOLE_SERVER = "console_server"


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """One device as the runtime sees it, with defaults applied and driver options validated."""

    id: str
    kind: DeviceKind
    rack: str
    role: str  # which driver session: "bmc" for a node, "pdu", "console_server"
    driver: str | None
    options: DriverOptions | None
    poll_interval: float
    call_timeout: float
    power_timeout: float
    protected: bool
    tags: tuple[str, ...]
    outlets: tuple[str, ...] = ()
    console: ConsoleConfig | None = None
    max_power_w: float | None = None
    escalate: bool = False
    feed: str | None = None


@dataclass(frozen=True, slots=True)
class Config:
    """A loaded, fully validated config."""

    source: str
    settings: RackdSettings
    devices: tuple[DeviceSpec, ...]
    warnings: tuple[ConfigIssue, ...] = ()

    @property
    def site(self) -> str:
        """Site name."""
        return self.settings.site.name

    def device(self, device_id: str) -> DeviceSpec:
        """One device by id; KeyError names the known ids."""
        for spec in self.devices:
            if spec.id == device_id:
                return spec
        known = ", ".join(spec.id for spec in self.devices)
        raise KeyError(f"no device {device_id!r} in {self.source} (devices: {known})")


# ---------------------------------------------------------------------------------------------- loading


def load_config(path: Path | str, registry: DriverRegistry | None = None) -> Config:
    """Read, validate and resolve a config file; ConfigError lists every problem found, with key paths."""
    path = Path(path)
    source = str(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([ConfigIssue("", "no such file", source)]) from None
    except OSError as exc:
        raise ConfigError([ConfigIssue("", f"cannot read: {exc.strerror}", source)]) from None
    except UnicodeDecodeError:
        raise ConfigError([ConfigIssue("", "not UTF-8 text", source)]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([ConfigIssue("", f"invalid TOML: {exc}", source)]) from None
    return validate_config(raw, source, registry or DriverRegistry())


def validate_config(raw: Mapping[str, Any], source: str, registry: DriverRegistry) -> Config:
    """Validate parsed TOML (phase one: structure; phase two: driver options, references, secrets)."""
    env_paths = _env_override_paths(os.environ)
    issues: list[ConfigIssue] = []
    settings: RackdSettings | None = None
    try:
        settings = RackdSettings(**raw)
    except ValidationError as exc:
        issues.extend(_issues_from_validation(exc, source, env_paths, model=RackdSettings))

    options: dict[tuple[str, int], DriverOptions] = {}
    issues.extend(_validate_driver_options(raw, source, registry, options))
    issues.extend(_check_references(raw, source))
    issues.extend(_check_secrets(settings, options, source))
    if issues:
        raise ConfigError(_dedupe(issues))
    assert settings is not None
    return Config(
        source, settings, tuple(_device_specs(settings, options)), tuple(_warnings(settings, options, source))
    )


def _env_override_paths(environ: Mapping[str, str]) -> dict[tuple[str, ...], str]:
    paths: dict[tuple[str, ...], str] = {}
    for key in environ:
        if key.upper().startswith(ENV_PREFIX):
            paths[tuple(part.lower() for part in key[len(ENV_PREFIX) :].split("__"))] = key
    return paths


def format_path(loc: Iterable[int | str]) -> str:
    """Render a pydantic location as a key path: ('node', 3, 'bmc', 'port') → node[3].bmc.port."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _issues_from_validation(
    exc: ValidationError,
    source: str,
    env_paths: Mapping[tuple[str, ...], str] | None = None,
    prefix: tuple[int | str, ...] = (),
    model: type[BaseModel] | None = None,
) -> list[ConfigIssue]:
    issues = []
    for error in exc.errors(include_url=False):
        loc = prefix + tuple(error["loc"])
        message = _describe_error(error, model, loc)
        where = source
        for env_path, var in (env_paths or {}).items():
            if tuple(str(p) for p in loc[: len(env_path)]) == env_path:
                where = f"environment {var}"
        issues.append(ConfigIssue(format_path(loc), message, where))
    return issues


def _describe_error(error: Any, model: type[BaseModel] | None, loc: tuple[int | str, ...]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        owner = _model_at(model, loc[:-1]) if model is not None else None
        expected = _known_keys(owner) if owner is not None else ""
        return "unknown key" + (f" (expected one of: {expected})" if expected else "")
    if kind == "missing":
        return "required key is missing"
    message = str(error["msg"]).removeprefix("Value error, ")
    if not any(SECRETISH.search(str(part)) for part in loc) and isinstance(error.get("input"), (str, int, float)):
        message += f" (got {error['input']!r})"
    return message


def _model_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model that validates the table at `loc` below `model` (to list its keys in an error)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)) or part not in current.model_fields:
            return None  # past our models (into driver options): no model of ours to name
        current = _unwrap(current.model_fields[part].annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """list[X] -> X, X | None -> X."""
    for arg in get_args(annotation) or ():
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
        inner = _unwrap(arg)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            return inner
    return annotation


def _known_keys(model: type[BaseModel]) -> str:
    return ", ".join(model.model_fields)


_COMMON_DEVICE_KEYS = frozenset(_DeviceBase.model_fields) | {"driver", "feed"}
_SECTIONS: Mapping[str, type[BaseModel]] = {
    "node": NodeConfig,
    "pdu": PduConfig,
    "console_server": ConsoleServerConfig,
}


def _driver_tables(
    raw: Mapping[str, Any],
) -> Iterable[tuple[str, int, tuple[int | str, ...], Mapping[str, Any]]]:
    """Every place a driver is named: (section, index, key path of the table, the table)."""
    for section in ("node", "pdu", "console_server"):
        entries = raw.get(section)
        if not isinstance(entries, list):
            continue
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict):
                continue
            if section == "node":
                bmc = entry.get("bmc")
                if isinstance(bmc, dict):
                    yield section, index, (section, index, "bmc"), bmc
            else:
                yield section, index, (section, index), entry


def _validate_driver_options(
    raw: Mapping[str, Any], source: str, registry: DriverRegistry, out: dict[tuple[str, int], DriverOptions]
) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    for section, index, loc, table in _driver_tables(raw):
        name = table.get("driver")
        if not isinstance(name, str):
            continue  # phase one reports the missing/mistyped driver key
        try:
            model = registry.driver_class(name).options_model
        except DriverNotFoundError as exc:
            issues.append(ConfigIssue(format_path((*loc, "driver")), str(exc), source))
            continue
        skip = {"driver"} if section == "node" else _COMMON_DEVICE_KEYS
        opts = {k: v for k, v in table.items() if k not in skip}
        try:
            out[(section, index)] = model.model_validate(opts)
        except ValidationError as exc:
            issues.extend(_issues_from_validation(exc, source, None, loc, model))
    return issues


def _check_references(raw: Mapping[str, Any], source: str) -> list[ConfigIssue]:
    pdus = {
        entry["id"] for entry in raw.get("pdu") or [] if isinstance(entry, dict) and isinstance(entry.get("id"), str)
    }
    return _duplicate_ids(raw, source) + _outlet_references(raw, source, pdus)


def _duplicate_ids(raw: Mapping[str, Any], source: str) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    seen: dict[str, str] = {}
    for section in ("node", "pdu", "console_server"):
        entries = raw.get(section)
        for index, entry in enumerate(entries if isinstance(entries, list) else []):
            device_id = entry.get("id") if isinstance(entry, dict) else None
            if not isinstance(device_id, str):
                continue
            here = format_path((section, index, "id"))
            if device_id in seen:
                issues.append(ConfigIssue(here, f"duplicate device id {device_id!r} (also {seen[device_id]})", source))
            else:
                seen[device_id] = here
    return issues


def _outlet_references(raw: Mapping[str, Any], source: str, pdus: set[str]) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    outlet_users: dict[str, str] = {}
    nodes = raw.get("node")
    for index, entry in enumerate(nodes if isinstance(nodes, list) else []):
        outlets = entry.get("outlets") if isinstance(entry, dict) else None
        for o_index, ref in enumerate(outlets if isinstance(outlets, list) else []):
            match = _OUTLET_RE.match(ref) if isinstance(ref, str) else None
            if match is None:
                continue  # phase one reports the shape
            here = format_path(("node", index, "outlets", o_index))
            if match["pdu"] not in pdus:
                known = ", ".join(sorted(pdus)) or "none configured"
                issues.append(
                    ConfigIssue(here, f"outlet {ref!r} names unknown PDU {match['pdu']!r} (PDUs: {known})", source)
                )
            elif ref in outlet_users:
                issues.append(ConfigIssue(here, f"outlet {ref!r} is already assigned at {outlet_users[ref]}", source))
            else:
                outlet_users[ref] = here
    return issues


def _secrets_in(value: Any, loc: tuple[int | str, ...]) -> Iterable[tuple[tuple[int | str, ...], Secret]]:
    if isinstance(value, Secret):
        yield loc, value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _secrets_in(getattr(value, name), (*loc, name))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _secrets_in(item, (*loc, index))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _secrets_in(item, (*loc, key))


def _all_secrets(
    settings: RackdSettings | None, options: Mapping[tuple[str, int], DriverOptions]
) -> Iterable[tuple[tuple[int | str, ...], Secret]]:
    if settings is not None:
        yield from _secrets_in(settings.mqtt, ("mqtt",))
        yield from _secrets_in(settings.control, ("control",))
        for index, node in enumerate(settings.node):
            if node.console is not None:
                yield from _secrets_in(node.console, ("node", index, "console"))
    for (section, index), opts in options.items():
        yield from _secrets_in(opts, (section, index, "bmc") if section == "node" else (section, index))


def _check_secrets(
    settings: RackdSettings | None, options: Mapping[tuple[str, int], DriverOptions], source: str
) -> list[ConfigIssue]:
    issues = []
    for loc, secret in _all_secrets(settings, options):
        try:
            secret.check()
        except SecretError as exc:
            issues.append(ConfigIssue(format_path(loc), str(exc), source))
    return issues


def _warnings(
    settings: RackdSettings, options: Mapping[tuple[str, int], DriverOptions], source: str
) -> list[ConfigIssue]:
    driver_warnings = [
        ConfigIssue(
            format_path((section, index, *(("bmc",) if section == "node" else ()), *key.split("."))), message, source
        )
        for (section, index), opts in options.items()
        for key, message in opts.config_warnings()
    ]
    return driver_warnings + [
        ConfigIssue(
            format_path(loc),
            "secret is written inline in the config; prefer {file=…}, {env=…} or {credential=…}",
            source,
        )
        for loc, secret in _all_secrets(settings, options)
        if secret.is_inline
    ]


def _dedupe(issues: list[ConfigIssue]) -> list[ConfigIssue]:
    seen: set[ConfigIssue] = set()
    out = []
    for issue in issues:
        if issue not in seen:
            seen.add(issue)
            out.append(issue)
    return out


def _device_specs(settings: RackdSettings, options: Mapping[tuple[str, int], DriverOptions]) -> Iterable[DeviceSpec]:
    defaults = settings.defaults

    def common(device: _DeviceBase) -> dict[str, Any]:
        return {
            "id": device.id,
            "rack": device.rack,
            "poll_interval": device.poll_interval or defaults.poll_interval,
            "call_timeout": device.call_timeout or defaults.call_timeout,
            "power_timeout": device.power_timeout or defaults.power_timeout,
            "protected": device.protected,
            "tags": tuple(device.tags),
        }

    for index, node in enumerate(settings.node):
        yield DeviceSpec(
            kind=DeviceKind.NODE,
            role="bmc",
            driver=node.bmc.driver if node.bmc else None,
            options=options.get(("node", index)),
            outlets=tuple(node.outlets),
            console=node.console,
            max_power_w=node.max_power_w,
            escalate=node.escalate,
            **common(node),
        )
    for index, pdu in enumerate(settings.pdu):
        yield DeviceSpec(
            kind=DeviceKind.PDU,
            role="pdu",
            driver=pdu.driver,
            options=options.get(("pdu", index)),
            feed=pdu.feed,
            **common(pdu),
        )
    for index, server in enumerate(settings.console_server):
        yield DeviceSpec(
            kind=DeviceKind.CONSOLE_SERVER,
            role="console_server",
            driver=server.driver,
            options=options.get(("console_server", index)),
            **common(server),
        )
