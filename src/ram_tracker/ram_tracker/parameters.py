"""The tracker node's parameters: one JSON schema declares them, this module reads it.

No ROS imports: the offline evaluation and tests use the same defaults and validation as the
node. The node declares exactly the schema's properties (type and default from the schema) and
calls `validate` at configure time, so a bad value fails with every problem named at once.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).resolve().parent / 'schema' / 'tracker_node.schema.json'


class ParameterError(ValueError):
    """One or more parameter values are invalid; the message lists each one."""


@functools.lru_cache(maxsize=None)
def load_schema() -> dict:
    with open(SCHEMA_PATH, encoding='utf-8') as f:
        return json.load(f)


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
