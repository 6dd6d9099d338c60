"""The project's TensorFlow-Serving-compatible model server, for laptops, CI and the
pipeline's serving check, where no `tensorflow/serving` container can run.

Production runs the real TF Serving container (`serving/deploy/`); this server speaks the same
REST and gRPC API (`../shared/TF_SERVING_API.md`) so one client works against both. Its
command is `python -m serving.model_server`, with tensorflow_model_server's flags.
"""
