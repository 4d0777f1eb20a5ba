"""Function subclasses (forward + backward adjacent), one module per op family."""
