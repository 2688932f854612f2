"""The Gradio app and the deployable Space folder.

``ui`` builds the app (:func:`~s3_hf.app.ui.create_app` over an engine and :class:`~s3_hf.app.settings.AppSettings`)
and launches it; ``settings`` reads the environment, ``inputs`` checks the form, ``handlers`` answers classify and
segment through the engine, ``spaces`` loads Hub spaces and words their failures, ``figures`` draws the results;
``deploy`` writes and uploads the Space folder and ``demo`` holds the demo's photos and synonyms. Importing the
package loads nothing heavy (the CLI imports ``deploy`` and ``demo``).
"""
