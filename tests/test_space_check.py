"""Program check reasons and the functional-equivalence fingerprint."""
import numpy as np
import pytest

from attnzero.space import (ELU_LINEAR, RELU_LINEAR, SOFTMAX, TRIAL_105, TRIAL_140, Genome, Reason,
                            check_program, fingerprint, same_function, sample, static_check)


@pytest.mark.parametrize('genome', [TRIAL_105, TRIAL_140, ELU_LINEAR, RELU_LINEAR])
def test_reference_genomes_pass(genome):
    res = check_program(genome)
    assert res.ok and res.reason is Reason.OK, res
    assert set(res.timings) >= {'static', 'compile', 'run', 'total'}
    assert res.complexity.kind == 'linear'


def test_batch_global_genome_skips_batch_check():
    assert check_program(TRIAL_105).skipped == ('batch_independence',)
    assert check_program(TRIAL_140).skipped == ()


@pytest.mark.parametrize('text, reason, fragment', [
    # log of a signed tensor -> NaN
    ('i3n303:log;-;-;-;-;-:einsum1,matmul,second', Reason.NONFINITE_OUTPUT, 'NaN'),
    # sign has a zero gradient: the output ignores K
    ('i3n303:sign;ones_aug;elu;-;-;homog_div:einsum1,matmul,second', Reason.IGNORES_INPUT, 'k'),
    # K is computed into B1 and then dropped by `second`
    ('i3n305:-;-;-;-;-;-:einsum1,product,second', Reason.IGNORES_INPUT, 'k'),
    # Q * (Q * (K * V)): every token on its own
    ('i3n303:-;-;-;-;-;-:product,product,product', Reason.NO_TOKEN_MIXING, 'token 0'),
    # a shape error
    ('i3n303:-;-;-;-;-;-:matmul,matmul,product', Reason.INVALID, 'inner dims'),
])
def test_rejections(text, reason, fragment):
    res = check_program(Genome.parse(text))
    assert not res.ok and res.reason is reason, res
    assert fragment in res.message


def test_quadratic_rejected_unless_allowed():
    res = check_program(SOFTMAX)
    assert res.reason is Reason.QUADRATIC and 'N, N' in res.message
    assert check_program(SOFTMAX, allow_quadratic=True).ok
    assert static_check(SOFTMAX)[0] is Reason.QUADRATIC


def test_per_sample_variants_are_batch_independent():
    g = Genome.parse('i3n303:elu;min_max_normalize_ps;l2norm_last;normalize_ps;-;l2norm_last:'
                     'einsum2,matmul,product')
    res = check_program(g)
    assert res.ok and res.skipped == ()


def test_batch_dependent_rejected():
    # the static analysis already refuses programs that move the batch axis, so exercise the
    # runtime check with a callable that leaks statistics across the batch
    inner = ELU_LINEAR.compile()

    def leaky(q, k, v):
        return inner(q, k, v) + 0.1 * v.mean(dim=0, keepdim=True)

    res = check_program(ELU_LINEAR, program=leaky)
    assert res.reason is Reason.BATCH_DEPENDENT, res


def test_distinct_kv_check():
    assert check_program(TRIAL_105, distinct_kv=True).ok
    assert check_program(TRIAL_140, distinct_kv=True).reason is Reason.INVALID


# --- functional equivalence ---------------------------------------------------------------------
@pytest.mark.parametrize('a, b', [
    # duplicated idempotent activation
    ('i3n303:elu;ones_aug;relu,relu;-;-;homog_div:einsum1,matmul,second',
     'i3n303:elu;ones_aug;relu;-;-;homog_div:einsum1,matmul,second'),
    # a scale in front of a scale-invariant normalisation
    ('i3n303:elu;min_max_normalize;scale,l2norm_last;normalize;-;l2norm_last:einsum2,matmul,product',
     'i3n303:elu;min_max_normalize;l2norm_last;normalize;-;l2norm_last:einsum2,matmul,product'),
    # (A^T B)^T transposed back == A^T B
    ('i3n303:elu;ones_aug;elu;transpose;-;homog_div:einsum2,matmul,second',
     'i3n303:elu;ones_aug;elu;-;-;homog_div:einsum1,matmul,second'),
    # revert twice
    ('i3n302:elu;scale;abs;sigmoid;revert,revert,l2_norm;l2norm_last:einsum1,einsum1,sum',
     'i3n302:elu;scale;abs;sigmoid;l2_norm;l2norm_last:einsum1,einsum1,sum'),
])
def test_fec_equal_for_equivalent(a, b):
    ga, gb = Genome.parse(a), Genome.parse(b)
    assert ga != gb
    assert fingerprint(ga) == fingerprint(gb)
    assert same_function(ga, gb)


def test_fec_different_for_different():
    genomes = [TRIAL_105, TRIAL_140, ELU_LINEAR, RELU_LINEAR, SOFTMAX]
    rng = np.random.default_rng(3)
    genomes += [sample(rng) for _ in range(30)]
    fps = {}
    for g in genomes:
        fps.setdefault(fingerprint(g), set()).add(g)
    # all distinct genomes here compute distinct functions except true duplicates; the references
    # must be distinct from each other
    assert len({fingerprint(g) for g in genomes[:5]}) == 5
    assert len(fps) >= len(set(genomes)) - 3


def test_fec_stable_and_invalid():
    assert fingerprint(TRIAL_105) == fingerprint(Genome.parse(TRIAL_105.to_string()))
    bad = Genome.parse('i3n303:-;-;-;-;-;-:matmul,matmul,product')
    assert fingerprint(bad) == f'invalid-{bad.hash}'
    assert not same_function(bad, bad)
