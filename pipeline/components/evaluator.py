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
(`model_util.get_callable`) in this process return such a signature wrapped to be called by
its keyword (`keyword_callable`): the same function on the same tensor. Beam workers in other
processes (multi-processing, Dataflow) look signatures up unwrapped, and call them as before.
"""
import os
from typing import Any, Callable, Dict, Iterable, List, Optional, Set

import tensorflow as tf
import tensorflow_model_analysis as tfma
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_model_analysis.utils import model_util
from tfx import types
from tfx.components.evaluator import executor as evaluator_executor
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_component_specs
from tfx.utils import path_utils, proto_utils

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


class Executor(evaluator_executor.Executor):
    """TFX's Evaluator executor; first replaces `transform_label` in the EvalConfig's model
    specs by `transform_features` when a model it scores lacks it, and has TFMA call signatures
    by keyword (`call_signatures_by_keyword`)."""

    def Do(
        self,
        input_dict: Dict[str, List[types.Artifact]],
        output_dict: Dict[str, List[types.Artifact]],
        exec_properties: Dict[str, Any],
    ) -> None:
        """Runs TFX's Evaluator with the preprocessing signature every model has."""
        config_key = standard_component_specs.EVAL_CONFIG_KEY
        if exec_properties.get(config_key):
            eval_config = tfma.EvalConfig()
            proto_utils.json_to_proto(exec_properties[config_key], eval_config)
            signature = preprocessing_signature(_model_dirs(input_dict))
            for spec in eval_config.model_specs:
                if list(spec.preprocessing_function_names) == [TRANSFORM_LABEL]:
                    spec.preprocessing_function_names[:] = [signature]
            exec_properties = {**exec_properties, config_key: proto_utils.proto_to_json(eval_config)}
        call_signatures_by_keyword()
        super().Do(input_dict, output_dict, exec_properties)


def reads_the_label_alone(evaluator: base_component.BaseComponent) -> base_component.BaseComponent:
    """Gives one of TFX's Evaluators this executor; returns it."""
    evaluator.executor_spec = executor_spec.BeamExecutorSpec(Executor)
    return evaluator
