"""Strict dataclass configuration: unknown keys, types, nesting, tuples, YAML round trips."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

import pytest
import yaml

from gradtrack.config import ConfigError, from_dict, from_yaml, load_yaml, replace, to_dict
from gradtrack.models import AlexNetConfig, GradNetConfig, SiamFCConfig


@dataclass
class Inner:
    a: int = 1
    b: float = 2.0


@dataclass
class Outer:
    name: str = "x"
    inner: Inner = field(default_factory=Inner)
    sizes: tuple[int, int] = (3, 4)
    scales: tuple[float, ...] = (0.5, 1.0)
    items: list[int] = field(default_factory=lambda: [1, 2])
    weights: dict[str, float] = field(default_factory=dict)
    maybe: Optional[float] = None
    maybe_inner: Inner | None = None
    mode: Literal["fast", "slow"] = "fast"
    flag: bool = False


@dataclass
class Required:
    must: int
    limit: float = 1.0

    def validate(self) -> None:
        if self.limit <= 0:
            raise ValueError(f"limit must be positive, got {self.limit}")


def test_defaults_and_full_build():
    assert from_dict(Outer, {}) == Outer()
    cfg = from_dict(Outer, {"name": "y", "inner": {"a": 5}, "sizes": [7, 8], "scales": [1, 2, 3], "items": [],
                            "weights": {"w": 1}, "maybe": 3, "maybe_inner": {"b": 4}, "mode": "slow", "flag": True})
    assert cfg.inner == Inner(a=5, b=2.0)
    assert cfg.sizes == (7, 8) and isinstance(cfg.sizes, tuple)
    assert cfg.scales == (1.0, 2.0, 3.0) and all(isinstance(v, float) for v in cfg.scales)
    assert cfg.weights == {"w": 1.0} and isinstance(cfg.weights["w"], float)
    assert cfg.maybe == 3.0 and isinstance(cfg.maybe, float)
    assert cfg.maybe_inner == Inner(b=4.0)
    assert cfg.mode == "slow" and cfg.flag is True


def test_unknown_key_names_the_key_and_the_known_keys():
    with pytest.raises(ConfigError) as exc:
        from_dict(Outer, {"nmae": "typo"})
    msg = str(exc.value)
    assert "'nmae'" in msg
    for known in ("name", "inner", "sizes", "mode"):
        assert known in msg


def test_nested_unknown_key_says_where():
    with pytest.raises(ConfigError, match=r"Outer\.inner: unknown key\(s\) \['c'\]; known keys are \['a', 'b'\]"):
        from_dict(Outer, {"inner": {"c": 1}})


@pytest.mark.parametrize("data, fragment", [
    ({"inner": {"a": "3"}}, "Outer.inner.a: expected an integer"),
    ({"inner": {"a": 2.5}}, "expected an integer"),
    ({"inner": {"a": True}}, "expected an integer"),  # bool is not an int here
    ({"inner": {"b": "fast"}}, "Outer.inner.b: expected a number"),
    ({"name": 3}, "Outer.name: expected a string"),
    ({"flag": "yes"}, "Outer.flag: expected true/false"),
    ({"flag": 1}, "expected true/false"),
    ({"mode": "medium"}, "Outer.mode: 'medium' is not one of"),
    ({"sizes": [1, 2, 3]}, "Outer.sizes: expected 2 items, got 3"),
    ({"sizes": [1, "2"]}, r"Outer.sizes\[1\]: expected an integer"),
    ({"sizes": 5}, "Outer.sizes: expected a list"),
    ({"items": [1, None]}, r"Outer.items\[1\]"),
    ({"inner": [1, 2]}, "expected a mapping for Inner"),
    ({"weights": {"w": "heavy"}}, "Outer.weights.w: expected a number"),
    ({"maybe": "high"}, "Outer.maybe"),
])
def test_wrong_types_are_rejected_with_the_path(data, fragment):
    with pytest.raises(ConfigError, match=fragment):
        from_dict(Outer, data)


def test_missing_required_and_validate():
    with pytest.raises(ConfigError, match="must"):
        from_dict(Required, {})
    assert from_dict(Required, {"must": 1}).limit == 1.0
    with pytest.raises(ConfigError, match="limit must be positive"):
        from_dict(Required, {"must": 1, "limit": -1})


def test_non_mapping_data_is_a_config_error():
    for bad in ([1, 2], "text", 3):
        with pytest.raises(ConfigError, match="expected a mapping"):
            from_dict(Inner, bad)


def test_yaml_round_trip(tmp_path):
    cfg = from_dict(Outer, {"inner": {"a": 9}, "sizes": [5, 6], "maybe_inner": {}, "weights": {"k": 0.5}})
    data = to_dict(cfg)
    assert data["sizes"] == [5, 6] and data["inner"] == {"a": 9, "b": 2.0}  # plain lists and dicts
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(data))
    back = from_yaml(Outer, path)
    assert back == cfg
    assert isinstance(back.sizes, tuple) and isinstance(back.inner, Inner)


@pytest.mark.parametrize("cls", [AlexNetConfig, SiamFCConfig, GradNetConfig])
def test_model_configs_round_trip_through_yaml(cls, tmp_path):
    cfg = cls()
    path = tmp_path / "model.yaml"
    path.write_text(yaml.safe_dump(to_dict(cfg)))
    assert from_yaml(cls, path) == cfg


def test_model_config_validation_and_unknown_nested_key():
    with pytest.raises(ConfigError, match="even"):
        from_dict(GradNetConfig, {"template": {"channels": [96, 255, 384, 384, 256]}})
    with pytest.raises(ConfigError, match=r"GradNetConfig\.siamfc\.backbone \(alexnet\): unknown key\(s\) \['chanels'\]"):
        from_dict(GradNetConfig, {"siamfc": {"backbone": {"chanels": [1, 2, 3, 4, 5]}}})


def test_replace_validates():
    cfg = Outer()
    assert replace(cfg, name="z").name == "z"
    assert replace(cfg, name="z").inner == cfg.inner
    with pytest.raises(ConfigError, match="unknown key"):
        replace(cfg, nope=1)
    with pytest.raises(ConfigError, match="expected an integer"):
        replace(cfg, sizes=(1.5, 2))


def test_load_yaml_errors(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(bad)
    top = tmp_path / "list.yaml"
    top.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_yaml(top)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert from_yaml(Inner, empty) == Inner()
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("a: 1\nzzz: 2\n")
    with pytest.raises(ConfigError, match=r"wrong\.yaml: unknown key\(s\) \['zzz'\]"):
        from_yaml(Inner, wrong)


# -- composition: base files ---------------------------------------------------------------------------
def _write(path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_base_is_deep_merged_and_relative_to_the_file(tmp_path):
    _write(tmp_path / "bases" / "root.yaml", "name: root\ninner: {a: 5, b: 7.0}\nitems: [1, 2, 3]\nweights: {x: 1.0}\n")
    _write(tmp_path / "bases" / "mid.yaml", "base: root.yaml\ninner: {b: 8.0}\nmode: slow\n")  # relative to bases/
    leaf = _write(tmp_path / "runs" / "leaf.yaml", "base: ../bases/mid.yaml\nitems: [9]\nweights: {y: 2.0}\n")
    data = load_yaml(leaf)
    assert "base" not in data
    assert data == {"name": "root", "inner": {"a": 5, "b": 8.0}, "items": [9], "weights": {"x": 1.0, "y": 2.0},
                    "mode": "slow"}
    cfg = from_yaml(Outer, leaf)
    assert cfg.inner == Inner(5, 8.0) and cfg.items == [9] and cfg.mode == "slow"


def test_unknown_keys_stay_errors_after_merging(tmp_path):
    _write(tmp_path / "root.yaml", "inner: {a: 5}\n")
    leaf = _write(tmp_path / "leaf.yaml", "base: root.yaml\ninner: {c: 1}\n")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['c'\]"):
        from_yaml(Outer, leaf)
    _write(tmp_path / "bad_root.yaml", "typo: 1\n")
    with pytest.raises(ConfigError, match="typo"):
        from_yaml(Outer, _write(tmp_path / "leaf2.yaml", "base: bad_root.yaml\nname: y\n"))


def test_base_cycles_missing_bases_and_duplicate_keys_are_errors(tmp_path):
    _write(tmp_path / "a.yaml", "base: b.yaml\nname: a\n")
    _write(tmp_path / "b.yaml", "base: a.yaml\nname: b\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_yaml(tmp_path / "a.yaml")
    with pytest.raises(ConfigError, match="cycle"):
        load_yaml(_write(tmp_path / "self.yaml", "base: self.yaml\n"))
    with pytest.raises(ConfigError, match="not found"):
        load_yaml(_write(tmp_path / "orphan.yaml", "base: nowhere.yaml\n"))
    with pytest.raises(ConfigError, match="base must be a file name"):
        load_yaml(_write(tmp_path / "list_base.yaml", "base: [a.yaml]\n"))
    with pytest.raises(ConfigError, match="duplicate key 'name'"):
        load_yaml(_write(tmp_path / "dup.yaml", "name: a\nmode: fast\nname: b\n"))
    with pytest.raises(ConfigError, match="duplicate key 'a'"):
        load_yaml(_write(tmp_path / "dup_nested.yaml", "inner:\n  a: 1\n  a: 2\n"))
    # the same base reached twice through two branches of a chain is not a cycle
    _write(tmp_path / "r.yaml", "name: r\n")
    _write(tmp_path / "m.yaml", "base: r.yaml\nmode: slow\n")
    assert load_yaml(_write(tmp_path / "l.yaml", "base: m.yaml\n")) == {"name": "r", "mode": "slow"}
