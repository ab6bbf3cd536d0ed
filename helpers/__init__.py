"""PlotGPT: train a small GPT on one narrow domain - the library the notebooks import.

Modules stand on floors and import only from below: config, device, paths, atomic, tokenizer,
download -> corpus, dataset, model, optim -> prepare, checkpoint, evaluate, sample -> train,
plots -> cli. See the README for the annotated tree.
"""
__version__ = "0.1.0"
