"""Report, and on request update, the template version of many generated projects at once (`python -m fleet`)."""
