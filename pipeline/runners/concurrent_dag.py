"""A local DAG runner that starts each TFX node as soon as the nodes it depends on have finished.

TFX 1.16's LocalDagRunner launches the nodes of the compiled pipeline one after the other, in
topological order (its own TODO says it should run independent ones in parallel). This pipeline
has several independent nodes: the statistics, the drift check and the external-table check all
read the ExampleGen's output; the two Evaluators and the serving check all read the Trainer's
model. `ConcurrentDagRunner` runs the same IR with TFX's own `Launcher`, one thread per node that
is ready, at most `max_workers` at a time.

Each node still runs whole in its thread with its own ML Metadata connection, so caching,
lineage and the published artifacts are exactly LocalDagRunner's. When a node fails, no further
node starts; the nodes already running finish, and the first failure is raised.
"""
import concurrent.futures
import datetime
from typing import Dict, List, Optional, Set

from absl import logging
from tfx.dsl.compiler import constants
from tfx.orchestration import metadata
from tfx.orchestration.local import local_dag_runner, runner_utils
from tfx.orchestration.portable import launcher, runtime_parameter_utils
from tfx.proto.orchestration import pipeline_pb2
from tfx.utils import telemetry_utils


class ConcurrentDagRunner(local_dag_runner.LocalDagRunner):
    """LocalDagRunner with independent nodes run at the same time (see the module docstring)."""

    def __init__(self, max_workers: int = 2):
        super().__init__()
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, got {max_workers}")
        self.max_workers = max_workers

    def run_with_ir(self, pipeline: pipeline_pb2.Pipeline, run_options: Optional[pipeline_pb2.RunOptions] = None) -> None:
        if run_options is not None:
            # Partial runs snapshot the pipeline between nodes; LocalDagRunner does them.
            return super().run_with_ir(pipeline, run_options)
        runtime_parameter_utils.substitute_runtime_parameter(
            pipeline, {constants.PIPELINE_RUN_ID_PARAMETER_NAME: datetime.datetime.now().isoformat()}
        )
        deployment_config = runner_utils.extract_local_deployment_config(pipeline)
        connection_config = getattr(
            deployment_config.metadata_connection_config,
            deployment_config.metadata_connection_config.WhichOneof("connection_config"),
        )
        nodes = {node.pipeline_node.node_info.id: node.pipeline_node for node in pipeline.nodes}
        order = list(nodes)

        def launch(node_id: str) -> None:
            node = nodes[node_id]
            component_launcher = launcher.Launcher(
                pipeline_node=node,
                mlmd_connection=metadata.Metadata(connection_config),
                pipeline_info=pipeline.pipeline_info,
                pipeline_runtime_spec=pipeline.runtime_spec,
                executor_spec=runner_utils.extract_executor_spec(deployment_config, node_id),
                custom_driver_spec=runner_utils.extract_custom_driver_spec(deployment_config, node_id),
            )
            logging.info("Component %s is running.", node_id)
            component_launcher.launch()
            logging.info("Component %s is finished.", node_id)

        done: Set[str] = set()
        running: Dict[concurrent.futures.Future, str] = {}
        failure: Optional[BaseException] = None
        with telemetry_utils.scoped_labels({telemetry_utils.LABEL_TFX_RUNNER: "local"}):
            with concurrent.futures.ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="tfx-node") as pool:
                while True:
                    skipped = failure is None
                    while skipped:
                        skipped = False
                        for node_id in _ready(order, nodes, done, set(running.values())):
                            if nodes[node_id].execution_options.HasField("skip"):
                                logging.info("Skipping component %s.", node_id)
                                done.add(node_id)
                                skipped = True
                            elif len(running) < self.max_workers:
                                running[pool.submit(launch, node_id)] = node_id
                    if not running:
                        break
                    finished, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
                    for future in finished:
                        node_id = running.pop(future)
                        error = future.exception()
                        if error is not None and failure is None:
                            failure = error
                        elif error is None:
                            done.add(node_id)
        if failure is not None:
            raise failure
        not_run = [node_id for node_id in order if node_id not in done]
        if not_run:
            raise RuntimeError(f"nodes never became ready: {', '.join(not_run)}")


def _ready(order: List[str], nodes: Dict[str, pipeline_pb2.PipelineNode], done: Set[str], running: Set[str]) -> List[str]:
    """The nodes, in topological order, whose upstream nodes have all finished."""
    return [
        node_id
        for node_id in order
        if node_id not in done and node_id not in running and all(up in done for up in nodes[node_id].upstream_nodes)
    ]
