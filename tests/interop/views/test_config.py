"""Connector configuration: the sample file, ${ENV} expansion, secrets, every validation rule."""

from __future__ import annotations

import copy
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medledger.errors import InputError
from medledger.interop.views.config import load_config, parse_config, parse_duration

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "views" / "connectors.yaml"
ENV = {"HIS_DB_PASSWORD": "s3cret-his", "LIS_DB_PASSWORD": "s3cret-lis", "BRIDGE_DB_PASSWORD": "b"}

BASE: dict[str, Any] = {
    "name": "member-his-requisitions",
    "kind": "requisitions",
    "institution": "hosp-member-east",
    "performer": "hosp-central",
    "url": "mysql+pymysql://his_reader@10.1.2.3:3306/his?charset=utf8mb4",
    "view": "v_jc_sqd",
    "watermark": "gxsj",
    "key": "sqdh",
    "columns": {
        "placer": "sqdh",
        "patient.id": "brid",
        "item.code": "jcxm_dm",
        "item.kind": "jclb",
        "authored": "sqsj",
    },
}


def _doc(**over: Any) -> dict[str, Any]:
    c = copy.deepcopy(BASE)
    for k, v in over.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return {"connectors": [c]}


def test_sample_file_loads_with_both_connectors_and_the_bridge() -> None:
    """The shipped sample parses: names, kinds, durations, grouping, defaults, bridge flag."""
    cfg = load_config(SAMPLE, environ=ENV)
    his, lis = cfg.connectors
    assert (his.name, his.kind, his.view, his.group_by) == (
        "member-his-requisitions", "requisitions", "his.v_jc_sqd", "sqdh",
    )  # fmt: skip
    assert (his.performer, his.placer_institution) == ("hosp-central", None)
    assert his.interval == 5.0
    assert his.lookback == timedelta(seconds=60)
    assert his.batch == 500
    assert his.values["patient.sex"]["男"] == "male"
    assert his.values["item.kind"]["超声"] == "ultrasound"
    assert (lis.kind, lis.placer_institution, lis.defaults) == (
        "results", "hosp-member-east", {"kind": "lab"},
    )  # fmt: skip
    assert lis.lookback == timedelta(minutes=2)
    assert lis.batch == 500
    assert cfg.exposed is not None
    assert cfg.exposed.expose_patient_name is False


def test_env_expansion_fills_the_password_and_never_shows_it() -> None:
    """${VAR} fills the URL, but repr and redacted_url hide the password."""
    cfg = load_config(SAMPLE, environ=ENV)
    his = cfg.connectors[0]
    assert "s3cret-his" in his.url
    assert "s3cret-his" not in repr(his)
    assert "s3cret-his" not in repr(cfg)
    assert his.redacted_url == "mysql+pymysql://his_reader:***@10.1.2.3:3306/his?charset=utf8mb4"


def test_missing_env_var_names_the_variable_not_a_value() -> None:
    """An unset ${VAR} is an error naming the connector's url key and the variable."""
    with pytest.raises(InputError) as err:
        load_config(SAMPLE, environ={"LIS_DB_PASSWORD": "x", "BRIDGE_DB_PASSWORD": "y"})
    assert err.value.field == "connectors[0].url"
    assert err.value.value == "${HIS_DB_PASSWORD}"
    assert "HIS_DB_PASSWORD" in str(err.value.expected)


def test_bad_url_error_hides_the_password() -> None:
    """An unparsable URL is reported redacted."""
    with pytest.raises(InputError) as err:
        parse_config(_doc(url="mysql+pymysql://u:topsecret@host:notaport/db"), environ={})
    assert err.value.field == "connectors[0].url"
    assert "topsecret" not in str(err.value.to_dict())


@pytest.mark.parametrize(
    ("over", "field", "value"),
    [
        ({"columns": {**BASE["columns"], "item.colour": "ys"}}, "connectors[0].columns.item.colour",
         "item.colour"),
        ({"columns": {k: v for k, v in BASE["columns"].items() if k != "item.kind"}},
         "connectors[0].columns.item.kind", None),
        ({"columns": {**BASE["columns"], "placer": "sq dh"}}, "connectors[0].columns.placer",
         "sq dh"),
        ({"name": "Member_HIS"}, "connectors[0].name", "Member_HIS"),
        ({"name": None}, "connectors[0].name", None),
        ({"interval": "5 parsecs"}, "connectors[0].interval", "5 parsecs"),
        ({"interval": "0s"}, "connectors[0].interval", "0s"),
        ({"interval": -3}, "connectors[0].interval", -3),
        ({"lookback": "-1s"}, "connectors[0].lookback", "-1s"),
        ({"batch": 0}, "connectors[0].batch", 0),
        ({"batch": "500"}, "connectors[0].batch", "500"),
        ({"kind": "orders"}, "connectors[0].kind", "orders"),
        ({"watermark_type": "timestamp"}, "connectors[0].watermark_type", "timestamp"),
        ({"watermark_type": "integer", "lookback": "60s"}, "connectors[0].lookback", "60s"),
        ({"view": "his.dbo.v_jc_sqd"}, "connectors[0].view", "his.dbo.v_jc_sqd"),
        ({"view": "v;drop table x"}, "connectors[0].view", "v;drop table x"),
        ({"key": "sqdh)"}, "connectors[0].key", "sqdh)"),
        ({"placer_institution": "hosp-x"}, "connectors[0].placer_institution", "hosp-x"),
        ({"institution": ""}, "connectors[0].institution", ""),
        ({"values": {"patient.sex": {"1": "man"}}}, "connectors[0].values.patient.sex", "man"),
        ({"values": {"item.kind": {"放射": "xray"}}}, "connectors[0].values.item.kind", "xray"),
        ({"values": {"patient.sexx": {"1": "male"}}}, "connectors[0].values.patient.sexx",
         "patient.sexx"),
        ({"defaults": {"item.kind": "mri"}}, "connectors[0].defaults.item.kind", "mri"),
        ({"batchsize": 10}, "connectors[0].batchsize", "batchsize"),
    ],
)  # fmt: skip
def test_validation_names_connector_key_path_and_value(
    over: dict[str, Any], field: str, value: Any
) -> None:
    """Each bad key is refused with its key path, the value the file had and what was wanted."""
    with pytest.raises(InputError) as err:
        parse_config(_doc(**over), environ={})
    assert err.value.field == field
    assert err.value.value == value
    assert err.value.expected
    if field != "connectors[0].name":
        assert "member-his-requisitions" in err.value.message  # the connector is named


def test_duplicate_names_are_refused_naming_both_positions() -> None:
    """Two connectors with one name: the second is refused and the first is pointed to."""
    doc = _doc()
    doc["connectors"].append(copy.deepcopy(BASE))
    with pytest.raises(InputError) as err:
        parse_config(doc, environ={})
    assert err.value.field == "connectors[1].name"
    assert "connectors[0]" in str(err.value.expected)


def test_results_connector_needs_obs_code_for_observation_fields() -> None:
    """obs.value without obs.code is refused; results need filler, code, status, issued."""
    results = {
        "kind": "results",
        "performer": None,
        "placer_institution": "hosp-member-east",
        "columns": {"filler": "bgdh", "patient.id": "brid", "code": "dm", "status": "zt",
                    "issued": "shsj", "obs.value": "jg"},
        "defaults": {"kind": "lab"},
    }  # fmt: skip
    with pytest.raises(InputError) as err:
        parse_config(_doc(**results), environ={})
    assert err.value.field == "connectors[0].columns.obs.code"
    results["columns"] = {**results["columns"], "obs.code": "xmdm"}
    assert parse_config(_doc(**results), environ={}).connectors[0].kind == "results"
    del results["defaults"]
    with pytest.raises(InputError) as err:
        parse_config(_doc(**results), environ={})
    assert err.value.field == "connectors[0].columns.kind"


def test_integer_watermark_takes_an_integer_lookback() -> None:
    """An integer watermark's lookback counts units."""
    c = parse_config(_doc(watermark_type="integer", lookback=100), environ={}).connectors[0]
    assert c.watermark_type == "integer"
    assert c.lookback == 100


def test_yaml_syntax_error_names_the_position() -> None:
    """Broken YAML is an InputError with the line and column."""
    with pytest.raises(InputError) as err:
        parse_config("connectors:\n  - name: [unclosed\n", environ={})
    assert err.value.field == "config"
    assert str(err.value.value).startswith("line ")


def test_unreadable_file_is_an_input_error(tmp_path: Path) -> None:
    """A missing file is an InputError naming the path."""
    with pytest.raises(InputError) as err:
        load_config(tmp_path / "nope.yaml")
    assert err.value.field == "config"
    assert str(err.value.value).endswith("nope.yaml")


def test_empty_connector_list_is_refused() -> None:
    """A file without connectors is refused."""
    with pytest.raises(InputError) as err:
        parse_config({"connectors": []}, environ={})
    assert err.value.field == "connectors"


@given(st.integers(min_value=1, max_value=10_000), st.sampled_from(["ms", "s", "m", "h"]))
def test_durations_scale_by_their_unit(n: int, unit: str) -> None:
    """Any N<unit> up to 366 days is N times the unit in seconds; longer ones are refused."""
    seconds = n * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    if seconds <= 366 * 86400:
        assert parse_duration(f"{n}{unit}", "x") == pytest.approx(seconds)
    else:
        with pytest.raises(InputError):
            parse_duration(f"{n}{unit}", "x")
