"""Logic of the orthanc-ris plugin. Standard library only, and no `import orthanc` at
module level: every module runs (and is tested) outside Orthanc, with the Orthanc calls
passed in."""
