"""The tracker node's parameters: one JSON schema declares them, this module reads it.

No ROS imports: the offline evaluation and tests use the same defaults and validation as the
node. The node declares exactly the schema's properties (type and default from the schema) and
calls `validate` at configure time, so a bad value fails with every problem named at once.
Algorithm 1's settings (detection_threshold, max_age, ...) have their defaults in one place,
TrackerConfig: their schema entries name the field they set (`tracker_config_field`) instead of
carrying a default, and load_schema fills it in.
"""
from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path

import jsonschema
import yaml

from ram_tracker.tracker import TrackerConfig

SCHEMA_PATH = Path(__file__).resolve().parent / 'schema' / 'tracker_node.schema.json'
# The schema keyword naming the TrackerConfig field a parameter sets (validators ignore it).
TRACKER_CONFIG_FIELD = 'tracker_config_field'


class ParameterError(ValueError):
    """One or more parameter values are invalid; the message lists each one."""


@functools.lru_cache(maxsize=None)
def load_schema() -> dict:
    """The schema, with Algorithm 1's defaults taken from TrackerConfig."""
    with open(SCHEMA_PATH, encoding='utf-8') as f:
        return with_tracker_defaults(json.load(f), SCHEMA_PATH)


def with_tracker_defaults(schema: dict, source) -> dict:
    """`schema` (read from `source`) with each `tracker_config_field` parameter's default set to
    that TrackerConfig field's default. ValueError naming the parameter for an entry that also
    has a default of its own (two homes), an unknown field, or a default its schema refuses."""
    defaults = TrackerConfig()
    known = {field.name for field in dataclasses.fields(TrackerConfig)}
    for name, spec in schema['properties'].items():
        field = spec.get(TRACKER_CONFIG_FIELD)
        if field is None:
            continue
        if field not in known:
            raise ValueError(f"{source}: parameter {name}: TrackerConfig has no field '{field}'")
        if 'default' in spec:
            raise ValueError(f'{source}: parameter {name} has a default and '
                             f'{TRACKER_CONFIG_FIELD} {field}: its default is '
                             f'TrackerConfig.{field}, remove the one in the schema')
        spec['default'] = getattr(defaults, field)
        for error in jsonschema.Draft7Validator(spec).iter_errors(spec['default']):
            raise ValueError(f'{source}: parameter {name}: TrackerConfig.{field} default '
                             f'{spec["default"]!r}: {error.message}')
    return schema


def tracker_config_fields() -> dict[str, str]:
    """Parameter name -> the TrackerConfig field it sets (Algorithm 1's settings)."""
    return {name: spec[TRACKER_CONFIG_FIELD]
            for name, spec in load_schema()['properties'].items() if TRACKER_CONFIG_FIELD in spec}


def tracker_config(params: dict, base: TrackerConfig | None = None) -> TrackerConfig:
    """Algorithm 1's settings from parameters (over `base`, default TrackerConfig(), keeping
    its fields no parameter sets); ValueError for an inconsistent set (e.g. a detection
    threshold above the new-track threshold)."""
    fields = {field: params[name] for name, field in tracker_config_fields().items()}
    return dataclasses.replace(base or TrackerConfig(), **fields)


def defaults() -> dict:
    return {name: spec['default'] for name, spec in load_schema()['properties'].items()}


def validate(values: dict) -> dict:
    """Return defaults updated with `values`; raise ParameterError naming every bad key."""
    merged = {**defaults(), **values}
    validator = jsonschema.Draft7Validator(load_schema())
    problems = sorted(validator.iter_errors(merged), key=lambda e: list(e.absolute_path))
    if problems:
        lines = []
        for error in problems:
            where = '.'.join(str(p) for p in error.absolute_path) or '(top level)'
            lines.append(f'{where}: {error.message}')
        raise ParameterError('invalid tracker parameters:\n  ' + '\n  '.join(lines))
    return merged


def load_params_file(path: str | Path, node_name: str = 'tracker_node') -> dict:
    """Read a ROS 2 parameters YAML file and return the node's ros__parameters.

    Accepts the `/**` wildcard section and a section named after the node (with or without a
    leading slash or namespace); a node-specific section overrides the wildcard.
    """
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text(encoding='utf-8'))
    except (OSError, yaml.YAMLError) as error:
        raise ParameterError(f'cannot read parameters file {path}: {error}') from error
    if not isinstance(document, dict):
        raise ParameterError(f'{path}: expected a mapping of node names to ros__parameters')
    merged: dict = {}
    for key in sorted(document, key=lambda k: k != '/**'):  # wildcard first
        if key == '/**' or key.strip('/').split('/')[-1] == node_name:
            section = document[key] or {}
            params = section.get('ros__parameters') if isinstance(section, dict) else None
            if not isinstance(params, dict):
                raise ParameterError(f"{path}: section '{key}' has no ros__parameters mapping")
            merged.update(params)
    return merged
