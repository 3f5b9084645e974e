"""Cross-package: the shipped parameter files agree with the one schema that declares them."""
import json
from pathlib import Path

import pytest

from ram_tracker import parameters
from ram_tracker.tracker import TrackerConfig

ROOT = Path(__file__).resolve().parents[1]


def test_tracker_yaml_is_valid_and_lists_every_deployment_choice():
    values = parameters.load_params_file(ROOT / 'config' / 'tracker.yaml')
    deployment = set(parameters.load_schema()['properties']) - set(
        parameters.tracker_config_fields())
    assert set(values) == deployment, \
        'config/tracker.yaml lists every parameter but Algorithm 1\'s (TrackerConfig holds those)'
    validated = parameters.validate(values)
    assert {name: validated[name] for name in values} == values


def test_algorithm_1_defaults_have_one_home_tracker_config():
    """The schema file gives Algorithm 1's parameters no default of its own; the node, ram-track
    and the evaluation all see TrackerConfig's, under the node's parameter names."""
    raw = json.loads(parameters.SCHEMA_PATH.read_text())['properties']
    fields = parameters.tracker_config_fields()
    assert set(fields) >= {'detection_threshold', 'new_track_threshold', 'max_age',
                           'occlusion_model', 'rematch_radius'}
    assert fields['detection_threshold'] == 'det_threshold'
    assert not [name for name in fields if 'default' in raw[name]], \
        'a default in the schema beside TrackerConfig\'s: two homes'
    defaults = parameters.defaults()
    assert {name: defaults[name] for name in fields} == \
        {name: getattr(TrackerConfig(), field) for name, field in fields.items()}
    shipped = parameters.validate(parameters.load_params_file(ROOT / 'config' / 'tracker.yaml'))
    assert parameters.tracker_config(shipped) == TrackerConfig()


def test_a_schema_default_beside_tracker_config_is_refused_naming_the_parameter():
    def schema(**spec):
        return {'properties': {'max_age': {'type': 'integer', 'minimum': 0, **spec}}}
    with pytest.raises(ValueError, match='max_age has a default and tracker_config_field'):
        parameters.with_tracker_defaults(schema(tracker_config_field='max_age', default=3), 'x')
    with pytest.raises(ValueError, match="max_age: TrackerConfig has no field 'max_agee'"):
        parameters.with_tracker_defaults(schema(tracker_config_field='max_agee'), 'x')
    with pytest.raises(ValueError, match='TrackerConfig.max_age default 16'):
        parameters.with_tracker_defaults(schema(tracker_config_field='max_age', maximum=10), 'x')


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
