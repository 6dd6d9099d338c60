# The project's image: every Vertex AI pipeline step runs in it, and Dataflow (or a
# Flink/Spark DOCKER environment) uses it as the Beam worker image, so the steps and the
# workers import the same `modules` and `pipeline` with the same pinned libraries.
#
#   docker build -t us-central1-docker.pkg.dev/PROJECT/REPO/taxi:TAG .
#   docker push us-central1-docker.pkg.dev/PROJECT/REPO/taxi:TAG
FROM tensorflow/tfx:1.16.0

# The Beam SDK worker boot program, for use as Dataflow's sdk_container_image. Vertex AI
# steps name their own command (TFX's executor entry point), so the entry point below is
# only what Beam workers run. Beam 2.59.0 is the version TFX 1.16.0 and requirements.lock pin.
COPY --from=apache/beam_python3.10_sdk:2.59.0 /opt/apache/beam /opt/apache/beam

# pipeline/runners/vertex.py's CONTAINER_REPO_ROOT: the curated schema is read from here.
WORKDIR /pipeline
COPY . /pipeline
# The image already holds TFX and its pinned libraries; install only the project's packages.
RUN pip install --no-cache-dir --no-deps . && cd / && python -c "import modules.train, pipeline.dag"
# The request-logging proxy (serving/logging_proxy.py, the serving pod's sidecar) serves REST
# with aiohttp, which TFX's image does not carry: its pins come from the lock, like everything else.
RUN grep -E '^(aiohttp|aiohappyeyeballs|aiosignal|async-timeout|frozenlist|multidict|propcache|yarl)==' requirements.lock > /tmp/aiohttp.txt \
 && pip install --no-cache-dir --no-deps -r /tmp/aiohttp.txt && cd / && python -c "import serving.logging_proxy"

ENTRYPOINT ["/opt/apache/beam/boot"]
