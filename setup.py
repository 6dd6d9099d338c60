"""Installs the project's packages: the pipeline, its TFX module files and the serving code."""
from setuptools import find_packages, setup

setup(
    name="taxi-tfx-pipeline",
    version="0.1.0",
    description="An end-to-end TFX pipeline from raw taxi trips to a served, monitored model.",
    python_requires=">=3.10,<3.11",
    packages=find_packages(include=["pipeline", "pipeline.*", "modules", "modules.*", "serving", "serving.*"]),
    package_data={"pipeline": ["schema/*.pbtxt"], "serving": ["deploy/config/*", "deploy/k8s/**/*"]},
    include_package_data=True,
    # The same commands as `python -m pipeline <command>`.
    entry_points={"console_scripts": ["taxi-pipeline=pipeline.__main__:main"]},
)
