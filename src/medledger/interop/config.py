"""The gateway's configuration: ``DATA/interop.yaml`` (or ``--interop-config``).

```yaml
facilities:                  # names or ids seen in MSH-4/MSH-6/ORC-21 → institution ids
  示例区中医院: hosp-member-east
  HIS-EAST: hosp-member-east
  示例市第一人民医院: hosp-central
peers:                       # optional: the addresses each institution may send from (MLLP)
  hosp-member-east: [10.1.0.0/16, 127.0.0.1]
mllp:
  listen: 127.0.0.1:2575     # omit to run no MLLP listener
  application: MEDLEDGER     # our MSH-3 and MSH-4 in ACKs and pushed messages
  facility: MEDLEDGER-HUB
  max_message_bytes: 1048576
routes:                      # results pushed back as ORU^R01 over MLLP to the placer
  hosp-member-east: {mllp: 10.1.2.3:2575, charset: GB18030, application: HIS}
barcodes:                    # group-unique specimen barcodes (interop/barcode/scheme.py)
  template: "{inst}{yy}{mm}{dd}{seq:05d}{check}"
  institutions: {hosp-member-east: "12", hosp-central: "10"}
delivery:
  deadline: 72h              # retry a push for this long, then dead-letter it
views:                       # SQL views polled in, bridge tables written out
  connectors: [...]          # interop/views/__init__.py documents every key
  exposed: {url: postgresql+psycopg://bridge@10.1.2.9:5432/bridge}
```

Every error names the key path, the value and what was wanted; nothing is half-loaded.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from medledger.errors import InputError
from medledger.interop.barcode.scheme import BarcodeScheme, scheme_from_mapping
from medledger.interop.hl7.senders import SenderMap
from medledger.interop.hl7.writer import codec_or_fail
from medledger.interop.views.config import ViewsConfig, parse_config

__all__ = ["CONFIG_FILE", "GatewayConfig", "MllpRoute", "load_gateway_config", "parse_gateway"]

CONFIG_FILE = "interop.yaml"
_HOSTPORT = re.compile(r"^(?P<host>[A-Za-z0-9_.\-]+|\[[0-9A-Fa-f:]+\]):(?P<port>\d{1,5})$")
_DURATION = re.compile(r"^(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>ms|s|m|h|d)?$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
CHARSETS = ("UTF-8", "GB18030", "GBK")


@dataclass(frozen=True)
class MllpRoute:
    """Where ``institution`` receives pushed results: its HIS's MLLP listener and MSH-5/MSH-6
    names (``interop.push`` calls it ``Route``).

    ``charset`` is written in MSH-18 and used to encode (``UTF-8``, ``GB18030`` or ``GBK``);
    ``facility`` defaults to the institution id. Invalid values raise InputError naming the field.
    """

    institution: str
    host: str
    port: int
    charset: str = "UTF-8"
    application: str = "HIS"
    facility: str = ""

    def __post_init__(self) -> None:
        """Check every field; an empty ``facility`` becomes the institution id."""
        for name in ("institution", "host", "application"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise InputError(
                    f"route {name} must be non-empty text", field=name, value=value, expected="text"
                )
        port = self.port
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise InputError(
                "route port out of range", field="port", value=port, expected="1-65535"
            )
        codec_or_fail(self.charset)
        if not self.facility:
            object.__setattr__(self, "facility", self.institution)


@dataclass(frozen=True)
class GatewayConfig:
    """The validated gateway configuration (defaults: no listener, no routes)."""

    facilities: Mapping[str, str] = field(default_factory=dict)
    peers: Mapping[str, tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]] = field(
        default_factory=dict
    )
    listen: tuple[str, int] | None = None
    application: str = "MEDLEDGER"
    facility: str = "MEDLEDGER"
    max_message_bytes: int = 1_048_576
    routes: Mapping[str, MllpRoute] = field(default_factory=dict)
    barcodes: BarcodeScheme | None = None
    delivery_deadline_s: float = 72 * 3600.0
    views: ViewsConfig | None = None

    @property
    def senders(self) -> SenderMap:
        return SenderMap(self.facilities)

    def peer_allowed(self, institution: str, address: str) -> bool:
        """Whether ``address`` may send for ``institution`` (no list: any address)."""
        nets = self.peers.get(institution)
        if not nets:
            return True
        ip = _address_of(address)
        if ip is None:
            return False
        return any(ip in net for net in nets)


def _address_of(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP of ``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address."""
    candidates = [text, text.strip("[]")]
    if text.startswith("["):
        candidates.append(text[1:].split("]", 1)[0])
    elif text.count(":") == 1:
        candidates.append(text.split(":", 1)[0])
    for candidate in candidates:
        try:
            return ipaddress.ip_address(candidate)
        except ValueError:
            continue
    return None


def load_gateway_config(path: Path) -> GatewayConfig:
    """Read ``path`` (YAML); a missing file is the empty configuration."""
    if not path.exists():
        return GatewayConfig()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InputError(
            f"cannot read {path.name}: {type(exc).__name__}",
            field=str(path),
            expected="a UTF-8 YAML file",
        ) from None
    return parse_gateway(data or {})


def parse_gateway(data: Any) -> GatewayConfig:
    """Validate a parsed configuration mapping."""
    top = _mapping(data, "interop")
    _only(
        top, "interop", {"facilities", "peers", "mllp", "routes", "barcodes", "delivery", "views"}
    )
    facilities = {
        _text(k, "facilities"): _text(v, f"facilities.{k}")
        for k, v in _mapping(top.get("facilities", {}), "facilities").items()
    }
    peers = {
        _text(inst, "peers"): tuple(
            _network(x, f"peers.{inst}[{i}]") for i, x in enumerate(_list(nets, f"peers.{inst}"))
        )
        for inst, nets in _mapping(top.get("peers", {}), "peers").items()
    }
    mllp = _mapping(top.get("mllp", {}), "mllp")
    _only(mllp, "mllp", {"listen", "application", "facility", "max_message_bytes"})
    listen = _hostport(mllp["listen"], "mllp.listen") if "listen" in mllp else None
    size = mllp.get("max_message_bytes", 1_048_576)
    if isinstance(size, bool) or not isinstance(size, int) or not 1024 <= size <= 64 * 2**20:
        raise InputError(
            "mllp.max_message_bytes out of range",
            field="mllp.max_message_bytes",
            value=size,
            expected="an integer from 1024 to 67108864",
        )
    routes = {}
    for key, raw in _mapping(top.get("routes", {}), "routes").items():
        inst, where = _text(key, "routes"), f"routes.{key}"
        route = _mapping(raw, where)
        _only(route, where, {"mllp", "charset", "application", "facility"})
        host, port = _hostport(route.get("mllp"), f"{where}.mllp", destination=True)
        charset = str(route.get("charset", "UTF-8")).upper()
        if charset not in CHARSETS:
            raise InputError(
                "unknown charset", field=f"{where}.charset", value=charset, expected=str(CHARSETS)
            )
        routes[inst] = MllpRoute(
            institution=inst,
            host=host,
            port=port,
            charset=charset,
            application=_text(route.get("application", "HIS"), f"{where}.application"),
            facility=_text(route.get("facility", inst), f"{where}.facility"),
        )
    barcodes = None
    if "barcodes" in top:
        barcodes = scheme_from_mapping(_mapping(top["barcodes"], "barcodes"))
    delivery = _mapping(top.get("delivery", {}), "delivery")
    _only(delivery, "delivery", {"deadline"})
    deadline = _duration(delivery.get("deadline", "72h"), "delivery.deadline")
    views = parse_config(_mapping(top["views"], "views")) if "views" in top else None
    return GatewayConfig(
        views=views,
        facilities=facilities,
        peers=peers,
        listen=listen,
        application=_text(mllp.get("application", "MEDLEDGER"), "mllp.application"),
        facility=_text(mllp.get("facility", "MEDLEDGER"), "mllp.facility"),
        max_message_bytes=size,
        routes=routes,
        barcodes=barcodes,
        delivery_deadline_s=deadline,
    )


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InputError(
            f"{where} must be a mapping", field=where, value=str(value)[:80], expected="key: value"
        )
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise InputError(f"{where} must be a list", field=where, value=str(value)[:80])
    return value


def _only(mapping: Mapping[str, Any], where: str, allowed: set[str]) -> None:
    for key in mapping:
        if key not in allowed:
            raise InputError(
                f"unknown key {key!r} in {where}",
                field=f"{where}.{key}",
                value=key,
                expected=", ".join(sorted(allowed)),
            )


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str | int) or isinstance(value, bool) or not str(value).strip():
        raise InputError(
            f"{where} must be a non-empty string", field=where, value=value, expected="text"
        )
    return str(value).strip()


def _hostport(value: Any, where: str, *, destination: bool = False) -> tuple[str, int]:
    """Read ``HOST:PORT``; port 0 (any free port) is for listening, not for a ``destination``."""
    lowest = 1 if destination else 0
    m = _HOSTPORT.fullmatch(str(value)) if isinstance(value, str) else None
    if m is None or not lowest <= int(m["port"]) <= 65535:
        raise InputError(
            f"{where} must be HOST:PORT",
            field=where,
            value=value,
            expected=f"e.g. 10.1.2.3:2575 (port {lowest}-65535)",
        )
    return m["host"].strip("[]"), int(m["port"])


def _network(value: Any, where: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(str(value), strict=False)
    except ValueError:
        raise InputError(
            f"{where} is not an address or network",
            field=where,
            value=value,
            expected="e.g. 10.1.0.0/16 or 127.0.0.1",
        ) from None


def _duration(value: Any, where: str) -> float:
    m = _DURATION.fullmatch(str(value).strip()) if isinstance(value, str | int | float) else None
    if m is None or isinstance(value, bool):
        raise InputError(
            f"{where} is not a duration", field=where, value=value, expected="e.g. 30s, 10m, 72h"
        )
    seconds = float(m["n"]) * _UNITS[m["unit"]]
    if seconds <= 0:
        raise InputError(f"{where} must be positive", field=where, value=value)
    return seconds
