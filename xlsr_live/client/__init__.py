"""xlsr_live.client"""
