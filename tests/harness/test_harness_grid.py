"""Grid configs: parsing, checks with precise messages, cells and their keys."""

from __future__ import annotations

import json

import pytest

from stealguard.harness.grid import grid_from_dict, load_grid

BASE = {
    "name": "g",
    "budget": 100,
    "seeds": [0, 1],
    "defenses": ["none", "mad:epsilon=0.5", "dp_sgd:noise_multiplier=1.0"],
    "victim": [{"name": "m", "dataset": "mnist", "arch": "lenet"}, {"name": "f", "dataset": "fashionmnist", "arch": "lenet"}],
    "attack": [
        {"name": "knockoff", "queryset": {"mnist": "fashionmnist", "fashionmnist": "mnist"}, "params": {"epochs": 2}},
        {"name": "dfme-small", "attack": "dfme", "params": {"batch_size": 8}},
    ],
}


def _with(**changes):
    config = json.loads(json.dumps(BASE))
    config.update(changes)
    return config


def test_cells_cover_the_product_with_unique_keys():
    grid = grid_from_dict(BASE)
    cells = list(grid.cells())
    assert len(cells) == 2 * 2 * 2 * 3
    assert len({c.key() for c in cells}) == len(cells)
    knock = [c for c in cells if c.attack.name == "knockoff"]
    assert {(c.victim.dataset, c.queryset) for c in knock} == {("mnist", "fashionmnist"), ("fashionmnist", "mnist")}
    assert all(c.queryset is None for c in cells if c.attack.attack == "dfme")


def test_results_name_defaults_to_the_grid_name():
    assert grid_from_dict(BASE).results == "g"
    assert grid_from_dict(_with(results="shared")).results == "shared"
    with pytest.raises(ValueError, match="results"):
        grid_from_dict(_with(results="a b"))


def test_dp_cells_and_settings():
    grid = grid_from_dict(BASE)
    dp_cells = [c for c in grid.cells() if c.dp is not None]
    assert dp_cells and all(c.defense_name == "dp_sgd" for c in dp_cells)
    assert grid.dp_settings() == [{"max_grad_norm": 1.0, "noise_multiplier": 1.0}]
    assert all(c.dp is None for c in grid.cells() if c.defense_name != "dp_sgd")


def test_key_ignores_spacing_but_not_values():
    a = grid_from_dict(_with(defenses=["mad:epsilon=0.5"]))
    b = grid_from_dict(_with(defenses=["mad: epsilon = 0.5"]))
    c = grid_from_dict(_with(defenses=["mad:epsilon=0.6"]))
    ka, kb, kc = (next(g.cells()).key() for g in (a, b, c))
    assert ka == kb != kc


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"budget": 0}, "budget"),
        ({"budget": "10"}, "budget"),
        ({"seeds": []}, "seeds"),
        ({"seeds": [-1]}, "seeds"),
        ({"defenses": []}, "defenses"),
        ({"defenses": ["nonsense"]}, "unknown defense 'nonsense'"),
        ({"defenses": ["mad:epsilonn=0.5"]}, "takes no parameter"),
        ({"defenses": ["dp_sgd:max_grad_norm=1"]}, "noise_multiplier"),
        ({"defenses": ["dp_sgd:noise_multiplier=-1"]}, "noise_multiplier"),
        ({"defenses": ["dp_sgd:noise_multiplier=1,clip=2"]}, "clip"),
        ({"defenses": ["mad:epsilon=5"]}, r"defenses\[0\]: 'mad:epsilon=5'.*epsilon"),
        ({"defenses": ["none", "reverse_sigmoid:beta=-1"]}, r"defenses\[1\].*beta"),
        ({"defenses": ["adaptive_misinformation:tau=2"]}, "tau"),
        ({"victim": []}, "at least one"),
        ({"victim": [{"name": "m", "dataset": "mnist"}]}, r"victim\[0\]"),
        ({"victim": [{"name": "a/b", "dataset": "mnist", "arch": "lenet"}]}, "name"),
        ({"victim": [{"name": "m", "dataset": "mnist", "arch": "lenet"}] * 2}, "names two victims"),
        ({"victim": [{"name": "q", "int8": {"of": "m"}}]}, r"victim\[0\].int8.of: 'm' is not a float victim listed before it"),
        ({"victim": [*BASE["victim"], {"name": "q", "int8": {"of": "m"}}, {"name": "r", "int8": {"of": "q"}}]}, r"victim\[3\].int8.of: 'q'"),
        ({"victim": [*BASE["victim"], {"name": "q", "arch": "mlp", "int8": {"of": "m"}}]}, "only name and int8"),
        ({"victim": [*BASE["victim"], {"name": "q", "int8": {"of": "m", "bits": 4}}]}, "needs of"),
        ({"victim": [*BASE["victim"], {"name": "q", "int8": {"of": "m", "calibration": 0}}]}, r"int8.calibration: must be an integer >= 1"),
        ({"victim": [{"name": "m", "dataset": "mnist", "arch": "lenet", "seed": -1}]}, r"victim\[0\].seed"),
        ({"attack": [{"name": "knockoff", "queryset": "mnist", "budget": 0}]}, r"attack\[0\].budget: must be an integer >= 1"),
        ({"attack": [{"name": "knockoff", "queryset": "mnist", "params": {"epoch": 2}}]}, r"attack\[0\].params: knockoff takes no parameter\(s\) \['epoch'\]"),
        ({"attack": [{"name": "knockoff", "queryset": "mnist", "params": {"schedule": "weekly"}}]}, r"attack\[0\].params: knockoff: schedule must be one of"),
        ({"attack": [{"name": "maze", "params": {"directions": 0}}]}, r"attack\[0\].params: maze: .*directions"),
        ({"attack": [{"name": "x", "attack": "nope"}]}, "unknown attack 'nope'"),
        ({"attack": [{"name": "k", "attack": "knockoff", "queryset": {"mnist": "fashionmnist"}}]}, "fashionmnist"),
        ({"seeds": [0, 0]}, "seeds: lists a seed twice"),
        ({"defenses": ["none", "none"]}, "defenses: lists a defense setting twice"),
        ({"defenses": ["mad:epsilon=0.5", "mad: epsilon = 0.5"]}, "defenses: lists a defense setting twice"),
        ({"attack": [{"name": "knockoff", "queryset": "mnist", "defenses": []}]}, r"attack\[0\].defenses: must be a non-empty list"),
        ({"attack": [{"name": "knockoff", "queryset": "mnist", "defenses": ["none", "mad:epsilon=9"]}]}, r"attack\[0\].defenses\[1\]: 'mad:epsilon=9'"),
        ({"attack": [{"name": "knockoff", "queryset": "mnist", "seeds": [1, -2]}]}, r"attack\[0\].seeds: must be a non-empty list"),
        ({"attack": [{"name": "knockoff", "queryset": "mnist", "seed": [1]}]}, r"attack\[0\]: needs name \(optional .*seeds\)"),
        ({"extra": 1}, "unknown field"),
        ({"compare": {"references": ["dcpp"]}}, r"compare.references: unknown defense\(s\) \['dcpp'\]"),
        ({"compare": {"rivals": []}}, "compare.rivals: must be a non-empty list"),
        ({"compare": {"rivals": ["mad", "mad"]}}, "compare.rivals: lists a defense twice"),
        ({"compare": {"references": ["mad"], "rivals": ["mad", "dcp"]}}, r"both reference and rival: \['mad'\]"),
        ({"compare": {"reference": ["mad"]}}, r"compare: unknown field\(s\) \['reference'\]"),
    ],
)
def test_bad_configs_name_the_field(changes, match):
    with pytest.raises(ValueError, match=match):
        grid_from_dict(_with(**changes))


def test_int8_victim_shares_its_base_and_has_its_own_key():
    config = _with(victim=[*BASE["victim"], {"name": "m-int8", "int8": {"of": "m", "calibration": 256}}])
    grid = grid_from_dict(config)
    base, _f, int8 = grid.victims
    assert (int8.dataset, int8.arch, int8.train, int8.seed) == (base.dataset, base.arch, base.train, base.seed)
    assert int8.int8 is not None and int8.int8.base == base and (int8.int8.calibration, int8.int8.seed) == (256, 0)
    assert "int8" not in base.identity() and int8.identity()["int8"] == {"of": "m", "calibration": 256, "seed": 0}
    keys = [c.key() for c in grid.cells()]
    assert len(keys) == len(set(keys)) == 3 * 2 * 2 * 3
    assert [c.queryset for c in grid.cells() if c.victim is int8 and c.attack.name == "knockoff"] == ["fashionmnist"] * 6


def test_attack_budget_overrides_the_grid_budget():
    attacks = [{**BASE["attack"][0], "budget": 25}, BASE["attack"][1]]
    grid = grid_from_dict(_with(attack=attacks))
    budgets = {(c.attack.name, c.budget) for c in grid.cells()}
    assert budgets == {("knockoff", 25), ("dfme-small", 100)}
    unchanged = {c.key() for c in grid_from_dict(BASE).cells() if c.attack.name == "dfme-small"}
    assert unchanged == {c.key() for c in grid.cells() if c.attack.name == "dfme-small"}


def test_attack_defenses_and_seeds_override_the_grids_and_keep_keys():
    attacks = [{**BASE["attack"][0], "defenses": ["none", "dp_sgd:noise_multiplier=2.0"], "seeds": [1]}, BASE["attack"][1]]
    grid = grid_from_dict(_with(attack=attacks))
    knock = [c for c in grid.cells() if c.attack.name == "knockoff"]
    assert {(c.victim.name, c.defense, c.seed) for c in knock} == {
        (victim, defense, 1) for victim in ("m", "f") for defense in ("none", "dp_sgd:noise_multiplier=2.0")
    }
    assert len([c for c in grid.cells() if c.attack.name == "dfme-small"]) == 2 * 2 * 3
    assert grid.all_defenses() == [*BASE["defenses"], "dp_sgd:noise_multiplier=2.0"]
    assert grid.dp_settings() == [{"max_grad_norm": 1.0, "noise_multiplier": 1.0}, {"max_grad_norm": 1.0, "noise_multiplier": 2.0}]
    full = {c.key() for c in grid_from_dict(BASE).cells()}
    shared = [c for c in knock if c.defense == "none"]
    assert shared and all(c.key() in full for c in shared)


def test_load_grid_from_toml(tmp_path):
    path = tmp_path / "g.toml"
    path.write_text(
        'name = "t"\nbudget = 50\ndefenses = ["none"]\n[[victim]]\nname = "d"\ndataset = "digits"\narch = "mlp"\n'
        '[[attack]]\nname = "knockoff"\nqueryset = "digits"\n'
    )
    grid = load_grid(path)
    assert grid.seeds == (0,) and [c.queryset for c in grid.cells()] == ["digits"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_grid(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_text("name = ")
    with pytest.raises(ValueError, match="invalid TOML"):
        load_grid(tmp_path / "bad.toml")


def test_victim_cache_is_taken_relative_to_the_config_file(tmp_path, monkeypatch):
    folder = tmp_path / "configs"
    folder.mkdir()
    config_file = folder / "g.toml"
    monkeypatch.chdir(tmp_path)
    assert grid_from_dict(BASE).victim_cache is None
    assert str(grid_from_dict(_with(victim_cache="cache/x")).victim_cache) == "cache/x"
    config_file.write_text(
        'name = "g"\nbudget = 10\ndefenses = ["none"]\nvictim_cache = "../results/g"\n'
        '[[victim]]\nname = "m"\ndataset = "digits"\narch = "mlp"\n[[attack]]\nname = "knockoff"\nqueryset = "digits"\n'
    )
    assert load_grid(config_file).victim_cache == (tmp_path / "results" / "g").resolve()
    assert grid_from_dict(_with(victim_cache=str(tmp_path / "abs")), base_dir=folder).victim_cache == tmp_path / "abs"


@pytest.mark.parametrize("value", ["", "  ", 3, ["a"]])
def test_victim_cache_must_be_a_path(value):
    with pytest.raises(ValueError, match=r"grid victim_cache: must be a folder path"):
        grid_from_dict(_with(victim_cache=value))


def test_compare_table_sets_references_and_rivals_with_paper_defaults():
    plain = grid_from_dict(_with())
    assert plain.references == ("mad", "mad_argmax") and plain.rivals == ("reverse_sigmoid", "random_noise", "dp_sgd")
    custom = grid_from_dict(_with(compare={"references": ["dcp"], "rivals": ["reverse_sigmoid", "adaptive_misinformation"]}))
    assert custom.references == ("dcp",) and custom.rivals == ("reverse_sigmoid", "adaptive_misinformation")
    assert grid_from_dict(_with(compare={"rivals": ["dp_sgd"]})).references == ("mad", "mad_argmax")
