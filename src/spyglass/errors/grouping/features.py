def features_text(e): return ""
