"""Library code shared by the components and the tools: reading span files into rows and
tf.Examples, the drift comparators, the owner's acceptances and the external table sources.

Nothing here is a TFX component or an entry point, and nothing imports the DAG.
"""
