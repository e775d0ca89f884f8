# Best genome of the attnzero search in this directory (highest proxy accuracy on
# the Pareto front). Use as an mmengine _base_ or copy the two keys into a backbone
# dict; timm: timm.create_model(name, attn="attnzero", genome=GENOME).
GENOME = 'i3n302:relu2,relu;normalize_ps,softmax;normalize_ps;abs,l1norm_last;scale;abs,min_max_normalize:sum,einsum1,einsum1'
model = dict(backbone=dict(attn='attnzero', genome=GENOME))
