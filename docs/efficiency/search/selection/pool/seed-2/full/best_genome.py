# Best genome of the attnzero search in this directory (highest proxy accuracy on
# the Pareto front). Use as an mmengine _base_ or copy the two keys into a backbone
# dict; timm: timm.create_model(name, attn="attnzero", genome=GENOME).
GENOME = 'i3n301:softsign,softsign;normalize_ps,normalize_ps;elu,elu;relu;exp,revert;sqrt:sum,sum,sum'
model = dict(backbone=dict(attn='attnzero', genome=GENOME))
