"""The project's custom TFX components: code that runs inside one step of the pipeline.

One component per file. `artifacts.py` holds the custom artifact types, the property names
the components record and the readers tools use to open what a component wrote.
"""
