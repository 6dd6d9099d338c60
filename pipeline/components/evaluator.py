"""The Evaluators' executor: TFX's, with the label read through the narrowest signature the
models share.

TFMA gets the label by calling each model's preprocessing signature on every batch, then
splits every output of that signature into one value per trip, in Python. `transform_features`
has 28 outputs and the Evaluators read one, the label. Models exported by this project carry
`transform_label` too (`modules.signatures`), which returns the label alone: with two models
at 200,000 trips the Evaluator took about a fifth less time with it (docs/scale.md).

The model that serves, the Evaluators' baseline, may have been pushed before that signature
existed. So the pipeline's EvalConfig names `transform_label`
(`pipeline.eval_config`), and this executor keeps it only when every model it scores has it;
otherwise both models are read through `transform_features`, which every model here has.
Same label either way: `transform_label` is `transform_features`' label.

TFMA calls each signature with the batch of serialized trips as a positional argument. A loaded
SavedModel signature takes keywords only, so TensorFlow first tries the structured signature,
fails, builds a TypeError whose message holds the repr of every trip in the batch, drops it and
calls the flat signature: about 18 ms a batch of 1,000 trips against 2-3 ms by keyword, four
calls a batch with two models. The executor makes TFMA's signature lookup
(`model_util.get_callable`) return such a signature wrapped to be called by its keyword
(`keyword_callable`): the same function on the same tensor. It does so in each process that
loads a model: TFX's Evaluator builds each model's loader with
`evaluator_models.keyword_eval_shared_model`, whose construct function (pickled with the Beam
pipeline, run where a worker loads the model) installs the lookup first. So Beam workers in
other processes (multi-processing, Dataflow) call by keyword too. An Evaluator given a module
file or module path of its own loads its models as that module says (TFX's
`custom_eval_shared_model`), and only this process calls by keyword.

Given the raw data's schema, the executor hands TFX's Evaluator that schema cut down to the
features the EvalConfig reads (`evaluated_schema`): the slicing features, and the label and
weight keys where they are raw features. TFMA's input reader then decodes only those columns,
and TFMA splits only those into one value per trip, where without a schema it decoded and split
every column of the trips. The models still get each trip's serialized bytes, so their
predictions and labels are unchanged. At 200,000 trips with two models the Evaluator took about
a tenth less time (docs/scale.md). The cut is made here, before the Beam pipeline is built, so
it reaches workers in other processes too.
"""
import os
from typing import Any, Callable, Dict, Iterable, List, Optional, Set

import tensorflow as tf
import tensorflow_model_analysis as tfma
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_model_analysis.utils import model_util
from tfx import types
from tfx.components.evaluator import executor as evaluator_executor
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.utils import io_utils, path_utils, proto_utils

from modules.signatures import TRANSFORM_FEATURES, TRANSFORM_LABEL


def signature_names(model_dir: str) -> Set[str]:
    """The signature names of the SavedModel in `model_dir`, read from its saved_model.pb.

    Raises:
        tf.errors.NotFoundError: when the folder holds no saved_model.pb.
    """
    saved_model = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(os.path.join(model_dir, "saved_model.pb"), "rb") as model_file:
        saved_model.ParseFromString(model_file.read())
    return {name for meta_graph in saved_model.meta_graphs for name in meta_graph.signature_def}


def preprocessing_signature(model_dirs: Iterable[str]) -> str:
    """`transform_label` when every model has it, else `transform_features`."""
    if all(TRANSFORM_LABEL in signature_names(model_dir) for model_dir in model_dirs):
        return TRANSFORM_LABEL
    return TRANSFORM_FEATURES


def _model_dirs(input_dict: Dict[str, List[types.Artifact]]) -> List[str]:
    models = list(input_dict.get(standard_component_specs.MODEL_KEY) or [])
    models += input_dict.get(standard_component_specs.BASELINE_MODEL_KEY) or []
    return [path_utils.serving_model_path(model.uri, path_utils.is_old_model_artifact(model)) for model in models]


class KeywordCall:
    """A signature of one keyword-only input that, called with one positional argument, passes
    it by that keyword; any other call, and every attribute, is the signature's own."""

    def __init__(self, signature: Callable, input_name: str):
        self._signature = signature
        self._input_name = input_name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if len(args) == 1 and not kwargs:
            return self._signature(**{self._input_name: args[0]})
        return self._signature(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._signature, name)


_TFMA_GET_CALLABLE = model_util.get_callable


def keyword_callable(model: Any, signature_name: Optional[str] = None, required: bool = True) -> Optional[Callable]:
    """TFMA's `model_util.get_callable`, with a signature of `model.signatures` that takes one
    keyword-only input wrapped in KeywordCall."""
    found = _TFMA_GET_CALLABLE(model, signature_name, required)
    signatures = getattr(model, "signatures", None)
    if found is None or not signature_name or signatures is None or signature_name not in signatures:
        return found
    structured = getattr(found, "structured_input_signature", None)
    if not structured or structured[0] or len(structured[1]) != 1:
        return found
    keywords = structured[1]
    return KeywordCall(found, next(iter(keywords)))


def call_signatures_by_keyword() -> None:
    """Makes TFMA in this process look signatures up with `keyword_callable` (once)."""
    model_util.get_callable = keyword_callable


class KeywordSignaturesLoader:
    """A model's construct function (TFMA's `ModelLoader.construct_fn`) that first makes TFMA in
    the process running it look signatures up with `keyword_callable`. It is pickled with the
    Beam pipeline and runs where a worker loads the model, so it reaches workers in other
    processes."""

    def __init__(self, construct_fn: Callable[[], Any]):
        self.construct_fn = construct_fn

    def __call__(self) -> Any:
        call_signatures_by_keyword()
        return self.construct_fn()


# The exec property through which TFX's Evaluator executor takes a `custom_eval_shared_model`
# function by its dotted name (`tfx.components.util.udf_utils.get_fn`).
CUSTOM_EVAL_SHARED_MODEL_KEY = "custom_eval_shared_model"


def slicing_features(eval_config: tfma.EvalConfig) -> Optional[Set[str]]:
    """The features an EvalConfig slices by (its slicing and cross-slicing specs), or None when
    a spec slices by SQL (`slice_keys_sql`), which may read any feature."""
    specs = list(eval_config.slicing_specs)
    for cross in eval_config.cross_slicing_specs:
        specs.append(cross.baseline_spec)
        specs.extend(cross.slicing_specs)
    names: Set[str] = set()
    for spec in specs:
        if spec.slice_keys_sql:
            return None
        names.update(spec.feature_keys)
        names.update(spec.feature_values)
    return names


def _keys_read(eval_config: tfma.EvalConfig) -> Set[str]:
    """Every label, weight and query key the EvalConfig's model and metrics specs name."""
    names: Set[str] = set()
    for spec in eval_config.model_specs:
        names.update(name for name in (spec.label_key, spec.example_weight_key) if name)
        names.update(spec.label_keys.values())
        names.update(spec.example_weight_keys.values())
    names.update(spec.query_key for spec in eval_config.metrics_specs if spec.query_key)
    return names


def evaluated_schema(schema: schema_pb2.Schema, eval_config: tfma.EvalConfig) -> schema_pb2.Schema:
    """The schema cut down to the features `eval_config` reads: every feature it slices by, and
    its label, weight and query keys where the schema has them (a label may come from the models'
    preprocessing signature instead). The schema as it is when the EvalConfig slices by SQL, or
    when the schema has sparse or weighted features or tensor representations, whose columns
    this cut does not follow.

    Raises:
        ValueError: when the EvalConfig slices by a feature the schema lacks (TFMA's reader would
            not decode it, and its slices would be missing without an error).
    """
    sliced = slicing_features(eval_config)
    if sliced is None or schema.sparse_feature or schema.weighted_feature or schema.tensor_representation_group:
        return schema
    present = {feature.name for feature in schema.feature}
    missing = sorted(sliced - present)
    if missing:
        raise ValueError(f"the EvalConfig slices by {missing}, which the schema does not hold: the Evaluator cannot slice by them")
    kept = sliced | _keys_read(eval_config)
    cut = schema_pb2.Schema()
    cut.CopyFrom(schema)
    del cut.feature[:]
    cut.feature.extend(feature for feature in schema.feature if feature.name in kept)
    return cut


class Executor(evaluator_executor.Executor):
    """TFX's Evaluator executor; first replaces `transform_label` in the EvalConfig's model
    specs by `transform_features` when a model it scores lacks it, cuts the schema down to the
    features the EvalConfig reads (`evaluated_schema`), and has TFMA call signatures by keyword
    (`call_signatures_by_keyword`), here and where each model is loaded
    (`evaluator_models.keyword_eval_shared_model`)."""

    def Do(
        self,
        input_dict: Dict[str, List[types.Artifact]],
        output_dict: Dict[str, List[types.Artifact]],
        exec_properties: Dict[str, Any],
    ) -> None:
        """Runs TFX's Evaluator with the preprocessing signature every model has, and the schema
        of the features the EvalConfig reads."""
        config_key = standard_component_specs.EVAL_CONFIG_KEY
        if exec_properties.get(config_key):
            eval_config = tfma.EvalConfig()
            proto_utils.json_to_proto(exec_properties[config_key], eval_config)
            signature = preprocessing_signature(_model_dirs(input_dict))
            for spec in eval_config.model_specs:
                if list(spec.preprocessing_function_names) == [TRANSFORM_LABEL]:
                    spec.preprocessing_function_names[:] = [signature]
            exec_properties = {**exec_properties, config_key: proto_utils.proto_to_json(eval_config)}
            schema_key = standard_component_specs.SCHEMA_KEY
            if input_dict.get(schema_key):
                input_dict = {**input_dict, schema_key: [self._evaluated_schema_artifact(input_dict[schema_key], eval_config)]}
        own_module = any(exec_properties.get(key) for key in (standard_component_specs.MODULE_FILE_KEY, standard_component_specs.MODULE_PATH_KEY))
        if not own_module and not exec_properties.get(CUSTOM_EVAL_SHARED_MODEL_KEY):
            from pipeline.components import evaluator_models  # it imports this module

            loader = evaluator_models.keyword_eval_shared_model
            exec_properties = {**exec_properties, CUSTOM_EVAL_SHARED_MODEL_KEY: f"{evaluator_models.__name__}.{loader.__name__}"}
        call_signatures_by_keyword()
        super().Do(input_dict, output_dict, exec_properties)

    def _evaluated_schema_artifact(self, schemas: List[types.Artifact], eval_config: tfma.EvalConfig) -> types.Artifact:
        """A Schema artifact in this execution's temporary folder holding `evaluated_schema`."""
        schema = io_utils.SchemaReader().read(io_utils.get_only_uri_in_dir(artifact_utils.get_single_uri(schemas)))
        artifact = standard_artifacts.Schema()
        artifact.uri = os.path.join(self._get_tmp_dir(), "evaluated_schema")
        io_utils.write_pbtxt_file(os.path.join(artifact.uri, "schema.pbtxt"), evaluated_schema(schema, eval_config))
        return artifact


def reads_the_label_alone(evaluator: base_component.BaseComponent) -> base_component.BaseComponent:
    """Gives one of TFX's Evaluators this executor; returns it."""
    evaluator.executor_spec = executor_spec.BeamExecutorSpec(Executor)
    return evaluator
