loginmark.ngram_sum(10)
