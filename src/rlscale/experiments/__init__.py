"""rlscale.experiments"""
