class SimilarityIndex: pass
