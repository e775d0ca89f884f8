"""Genome values: text form, config format, hashing, errors."""
import pickle
import weakref

import numpy as np
import pytest
import torch

from attnzero.space import (BINARY_OPS, ELU_LINEAR, GRAPHS, NUM_ORIGINAL_BINARY, NUM_ORIGINAL_UNARY,
                            RELU_LINEAR, SOFTMAX, TRIAL_105, TRIAL_140, UNARY_OPS, Genome,
                            GenomeError, sample_raw)
from attnzero.space.genome import REFERENCE_GENOMES

TRIAL_105_TEXT = ('i3n303:elu;min_max_normalize;l2norm_last;normalize;-;l2norm_last:'
                  'einsum2,matmul,product')


def test_original_operator_indices():
    unary = ['no_op', 'transpose', 'softmax', 'log', 'abslog', 'abs', 'normalize', 'softsign',
             'invert', 'sigmoid', 'logsoftmax', 'sqrt', 'revert', 'min_max_normalize', 'sign',
             'scale', 'elu', 'axis_sum1', 'unsqz1', 'relu', 'l2_norm', 'exp', 'unsqz2',
             'axis_sum2', 'repeat', 'l2norm_last', 'sigmoid_1_reverse', 'strange_op']
    binary = ['sum', 'pairwise_distance', 'product', 'matmul', 'cosine_similarity', 'einsum1',
              'einsum2', 'einsum3', 'einsum4', 'cat']
    assert [op.name for op in UNARY_OPS[:NUM_ORIGINAL_UNARY]] == unary
    assert [op.name for op in BINARY_OPS[:NUM_ORIGINAL_BINARY]] == binary
    assert all(op.original for op in UNARY_OPS[:28]) and not any(op.original for op in UNARY_OPS[28:])


def test_graph_arities():
    assert GRAPHS['i3n2'].arity == (4, 2)
    for name in ('i3n301', 'i3n302', 'i3n303', 'i3n304', 'i3n305'):
        assert GRAPHS[name].arity == (6, 3)
    assert GRAPHS['i3n401'].arity == GRAPHS['i3n402'].arity == (8, 4)
    assert GRAPHS['i3n402'].describe().endswith('out = ⊗3(f6(f5(B2)), f7(B3))')
    assert 'out = ⊗2(f5(B2), f4(B1))' in GRAPHS['i3n301'].describe()


def test_trial_105_from_cfg_and_text():
    cfg = {'graph_type': 'i3n303', 'unary_op': [[16], [0, 13], [0, 25], [6], [0], [25, 0]],
           'binary_op': [6, 3, 2]}
    g = Genome.from_attnzero_cfg(cfg)
    assert g == TRIAL_105
    assert g.to_string() == TRIAL_105_TEXT
    assert Genome.parse(TRIAL_105_TEXT) == g
    # integer indices and explicit no_ops are accepted and canonicalised away
    assert Genome.parse('i3n303:16;0,13;no_op,25;6;0;25,0:6,3,2') == g
    assert Genome.parse(' i3n303 : elu ; min_max_normalize ;l2norm_last;normalize;;l2norm_last: '
                        'einsum2, matmul,product') == g
    back = g.to_attnzero_cfg()
    assert back == {'graph_type': 'i3n303', 'unary_op': [[16], [13], [25], [6], [0], [25]],
                    'binary_op': [6, 3, 2]}
    assert Genome.from_attnzero_cfg(back) == g
    assert TRIAL_140 == Genome.parse('i3n302:elu;scale;abs;sigmoid;l2_norm;l2norm_last:'
                                     'einsum1,einsum1,sum')


def test_hash_is_stable():
    # a literal: changing the canonical text or the hash function must be deliberate
    assert TRIAL_105.hash == '2103685250745ab7'
    assert TRIAL_140.hash == '29f32874ae312bf6'
    assert len({g.hash for g in (TRIAL_105, TRIAL_140, SOFTMAX, ELU_LINEAR, RELU_LINEAR)}) == 5


def test_value_semantics():
    a = Genome('i3n2', ((15,), (1,), (), (0, 2)), (3, 3))
    b = Genome.parse('i3n2:scale;transpose;-;softmax:matmul,matmul')
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    with pytest.raises(Exception):
        a.graph = 'i3n303'  # frozen
    assert pickle.loads(pickle.dumps(a)) == a
    assert a.replace(binary=(3, 2)) != a
    assert TRIAL_105.is_original and not ELU_LINEAR.is_original
    assert TRIAL_105.uses_batch_global and not TRIAL_140.uses_batch_global


def test_round_trip_random_genomes():
    rng = np.random.default_rng(123)
    for _ in range(500):
        g = sample_raw(rng)
        text = g.to_string()
        assert Genome.parse(text) == g
        assert Genome.parse(text).to_string() == text
        assert Genome.from_attnzero_cfg(g.to_attnzero_cfg()) == g


@pytest.mark.parametrize('text, match', [
    ('i3n999:-;-;-;-:sum,sum', "unknown graph 'i3n999'"),
    ('i3n2:-;-;-;-', "3 ':'-separated parts"),
    ('i3n2:-;-;-:sum,sum', 'needs 4 unary lists'),
    ('i3n2:-;-;-;-:sum', 'needs 2 binary ops'),
    ('i3n2:-;elu,relux;-;-:sum,sum', r"unary list 1, item 1: unknown unary operator 'relux' at column 12"),
    ('i3n2:-;-;-;-:sum,matmal', r"binary op 1: unknown binary operator 'matmal' at column 18"),
    ('i3n2:-;99;-;-:sum,sum', r'unary list 1, item 0: unary operator index 99 out of range'),
    ('i3n2:-;-;-;-:sum,42', r'binary op 1: binary operator index 42 out of range'),
    ('i3n2:-;elu,;-;-:sum,sum', r'unary list 1, item 1: empty unary operator'),
])
def test_bad_text_names_the_token(text, match):
    with pytest.raises(GenomeError, match=match):
        Genome.parse(text)


def test_bad_text_suggests_close_names():
    with pytest.raises(GenomeError, match="did you mean 'relu'"):
        Genome.parse('i3n2:-;relux;-;-:sum,sum')


def test_bad_cfg():
    with pytest.raises(GenomeError, match='lacks'):
        Genome.from_attnzero_cfg({'graph_type': 'i3n2'})
    with pytest.raises(GenomeError, match='out of range'):
        Genome.from_attnzero_cfg({'graph_type': 'i3n2', 'unary_op': [[0], [0], [0], [77]],
                                  'binary_op': [0, 0]})
    with pytest.raises(GenomeError, match='needs 6 unary lists'):
        Genome.from_attnzero_cfg({'graph_type': 'i3n303', 'unary_op': [[0]], 'binary_op': [0, 0, 0]})
    with pytest.raises(GenomeError, match="unknown graph"):
        Genome('i3n3', ((),), (0,))


@pytest.mark.parametrize('name', sorted(REFERENCE_GENOMES))
@pytest.mark.parametrize('fast', [True, False])
def test_compiled_call_creates_no_reference_cycles(name, fast, no_gc):
    """The executors free every intermediate (and the output, once the caller drops it) by
    reference counting: a call leaves nothing for the cycle collector, with or without autograd."""
    fn = REFERENCE_GENOMES[name].compile(fast=fast)
    q, k, v = (torch.randn(1, 2, 16, 8) for _ in range(3))
    with torch.no_grad():
        assert no_gc(lambda: fn(q, k, v)) == 0
    qg = q.clone().requires_grad_()
    assert no_gc(lambda: fn(qg, k, v).sum().backward()) == 0
    out = fn(q, k, v)
    ref = weakref.ref(out)
    del out
    assert ref() is None


def test_as_genome_contract():
    """One conversion for every caller (attention kernel, bench look-ups, surrogate)."""
    import types

    from attnzero import bench
    from attnzero.space import as_genome

    cfg = TRIAL_105.to_attnzero_cfg()
    assert as_genome(TRIAL_105) is TRIAL_105
    assert as_genome(TRIAL_105_TEXT) == TRIAL_105
    assert as_genome(cfg) == TRIAL_105
    assert as_genome(types.MappingProxyType(cfg)) == TRIAL_105      # any mapping, not only dict
    assert as_genome(None, default=TRIAL_140) is TRIAL_140            # the attention kernel's default
    assert as_genome(TRIAL_105, default=TRIAL_140) is TRIAL_105
    for bad in (None, [TRIAL_105_TEXT], 3, b'i3n2'):                  # no default: None is an error
        with pytest.raises(TypeError, match='not a genome'):
            as_genome(bad)
    with pytest.raises(GenomeError):
        as_genome('i3n303:nope')
    assert bench.as_genome is as_genome


def test_genome_problem_is_the_tools_one_line_check():
    """``genome_problem``: None for a usable genome in any form, else the reason in one line (the
    train/test/export tools print it after ``bad genome <value>:``)."""
    from attnzero.space import genome_problem

    for ok in (TRIAL_105, TRIAL_105_TEXT, TRIAL_105.to_attnzero_cfg()):
        assert genome_problem(ok) is None
    for bad, word in (('i3n303:nope', 'nope'), ('i9n9:elu:sum', 'i9n9'), ([TRIAL_105_TEXT], 'not a genome'),
                      ({'graph_type': 'i3n303'}, '')):
        msg = genome_problem(bad)
        assert isinstance(msg, str) and msg and '\n' not in msg and word in msg, (bad, msg)
