"""The Gradio app (ui) and the deployable Space folder (deploy)."""
