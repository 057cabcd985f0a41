"""The book pipeline: chapters (split, parameters), pipeline (execute, render, publish), pages, sphinx_ext."""
