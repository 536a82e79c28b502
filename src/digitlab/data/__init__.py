"""digitlab.data"""
