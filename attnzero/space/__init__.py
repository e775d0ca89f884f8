"""Search space of attnzero: attention as a small typed program over Q, K, V.

>>> from attnzero.space import Genome, TRIAL_105
>>> f = TRIAL_105.compile()          # pure torch callable f(q, k, v) -> (B, h, N, d)
>>> TRIAL_105.complexity().kind
'linear'

Sub-modules, lowest first (each imports only modules before it): :mod:`.symbolic` (symbolic
shapes), :mod:`.ops` (operators), :mod:`.graphs` (the 8 DAGs), :mod:`.cost` (static analysis),
:mod:`.simplify` (algebraic rewrites), :mod:`.fast` (fast executor) and :mod:`.masked`
(token-masked evaluation, DynamicViT), :mod:`.genome`
(``Genome``, text/config formats, ``as_genome``, compiler, published genomes), :mod:`.fec`
(functional-equivalence fingerprint), :mod:`.check` (program check), :mod:`.variation`
(sampling, mutation, crossover).
"""
from .check import CheckResult, Reason, check_program, static_check
from .cost import Complexity, analyse
from .fec import equivalent, fingerprint, probe_inputs, same_function
from .genome import (ELU_LINEAR, REFERENCE_GENOMES, RELU_LINEAR, SOFTMAX, TRIAL_105, TRIAL_140,
                     CompiledProgram, Genome, GenomeError, GenomeLike, InvalidGenomeError, as_genome,
                     genome_problem)
from .graphs import GRAPH_NAMES, GRAPHS, Graph
from .masked import MaskUnsupportedError, mask_problem, run_masked
from .ops import (BINARY_BY_NAME, BINARY_OPS, NUM_ORIGINAL_BINARY, NUM_ORIGINAL_UNARY,
                  UNARY_BY_NAME, UNARY_OPS, BinaryOp, UnaryOp)
from .variation import (DEFAULT_DISTRIBUTION, MUTATIONS, ORIGINAL_DISTRIBUTION, SpaceDistribution,
                        VariationError, crossover, is_valid, mutate, sample, sample_raw)

__all__ = [
    # genome
    'Genome', 'GenomeError', 'InvalidGenomeError', 'CompiledProgram', 'as_genome', 'genome_problem', 'GenomeLike',
    'TRIAL_105', 'TRIAL_140', 'SOFTMAX', 'ELU_LINEAR', 'RELU_LINEAR', 'REFERENCE_GENOMES',
    # analysis and checks
    'Complexity', 'analyse', 'Reason', 'CheckResult', 'check_program', 'static_check',
    'fingerprint', 'probe_inputs', 'same_function', 'equivalent',
    # token masks (DynamicViT)
    'mask_problem', 'run_masked', 'MaskUnsupportedError',
    # variation
    'SpaceDistribution', 'DEFAULT_DISTRIBUTION', 'ORIGINAL_DISTRIBUTION', 'VariationError',
    'MUTATIONS', 'sample', 'sample_raw', 'mutate', 'crossover', 'is_valid',
    # building blocks
    'GRAPHS', 'GRAPH_NAMES', 'Graph', 'UNARY_OPS', 'BINARY_OPS', 'UNARY_BY_NAME', 'BINARY_BY_NAME',
    'NUM_ORIGINAL_UNARY', 'NUM_ORIGINAL_BINARY', 'UnaryOp', 'BinaryOp',
]
