"""The job side of @step/@remote functions, run without the SDK's container driver (see ``__main__``)."""
