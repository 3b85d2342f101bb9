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
        ({"attack": [{"name": "x", "attack": "nope"}]}, "unknown attack 'nope'"),
        ({"attack": [{"name": "k", "attack": "knockoff", "queryset": {"mnist": "fashionmnist"}}]}, "fashionmnist"),
        ({"extra": 1}, "unknown field"),
    ],
)
def test_bad_configs_name_the_field(changes, match):
    with pytest.raises(ValueError, match=match):
        grid_from_dict(_with(**changes))


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
