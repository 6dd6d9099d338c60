"""Entry points that build the DAG (`pipeline.dag`) and run it: locally with LocalDagRunner
(`local`, `replay`, `watch`), on Airflow (`airflow_dag`) and compiled for Vertex AI
(`vertex`), with the Beam arguments of `beam_args`.
"""
