"""Cross-package: the shipped parameter files agree with the one schema that declares them."""
from pathlib import Path

import pytest

from ram_tracker import parameters

ROOT = Path(__file__).resolve().parents[1]


def test_tracker_yaml_is_complete_and_valid():
    values = parameters.load_params_file(ROOT / 'config' / 'tracker.yaml')
    schema_keys = set(parameters.load_schema()['properties'])
    assert set(values) == schema_keys, 'config/tracker.yaml must list every parameter'
    assert parameters.validate(values) == values


def test_tracker_yaml_matches_schema_defaults():
    values = parameters.load_params_file(ROOT / 'config' / 'tracker.yaml')
    assert values == parameters.defaults()


@pytest.mark.parametrize('bad, message', [
    ({'device': 'gpu0'}, 'device'),
    ({'input_width': 650}, 'input_width'),
    ({'detection_threshold': 1.5}, 'detection_threshold'),
    ({'num_threads': 'two'}, 'num_threads'),
    ({'no_such_parameter': 1}, 'no_such_parameter'),
])
def test_bad_values_are_named(bad, message):
    with pytest.raises(parameters.ParameterError, match=message):
        parameters.validate(bad)


def test_params_file_errors_name_the_file(tmp_path):
    broken = tmp_path / 'broken.yaml'
    broken.write_text('/**:\n  ros__parameters: [1, 2\n')
    with pytest.raises(parameters.ParameterError, match='broken.yaml'):
        parameters.load_params_file(broken)
    wrong = tmp_path / 'wrong.yaml'
    wrong.write_text('tracker_node:\n  parameters:\n    device: cpu\n')
    with pytest.raises(parameters.ParameterError, match='ros__parameters'):
        parameters.load_params_file(wrong)


def test_node_specific_section_overrides_wildcard(tmp_path):
    f = tmp_path / 'p.yaml'
    f.write_text('/**:\n  ros__parameters:\n    device: cpu\n    num_threads: 1\n'
                 '/robot/tracker_node:\n  ros__parameters:\n    num_threads: 4\n')
    assert parameters.load_params_file(f) == {'device': 'cpu', 'num_threads': 4}
