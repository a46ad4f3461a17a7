"""rlscale.data"""
