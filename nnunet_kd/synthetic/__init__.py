"""Synthetic chest-CT phantoms with lung tumours (:mod:`.chest_phantom`), written as nnU-Net raw datasets with box
masks (:mod:`.phantom_dataset`): the data of the tests, the benchmarks and the pipeline's profiles."""
